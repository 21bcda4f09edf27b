"""Class accuracy, per-pixel std, FDs and a PNG grid for MNIST training runs (issue 5, sec. 5).

A logistic-regression classifier (scikit-learn) is fitted on 8,000 real digits of the MNIST
test split (the only split on this machine) and scored on the other 2,000 real digits (its
real-data accuracy) and on `N_PER_CLASS` samples per class of each run, for every EMA decay
of the run and every alpha in `ALPHAS`. Samples are decoded to pixels and clamped to the data
range [-1, 1] (as the PNG grid shows them) before scoring. "std" is the per-pixel std across
the samples of one class, averaged over pixels and classes; the same number for the 2,000
held-out real digits is `real_std`, and `real_roundtrip` gives accuracy and std of those real
digits encoded and decoded by the run's generation space (the ceiling of that space).
FDs come from `generation.evaluate.evaluate_run` (= `featsel evaluate --run DIR`: the
manifest's evaluation featurizers, applied in the run's generation space; KID off for time),
and `fd_pixel_pca64`: FD of the decoded, clamped samples (the evaluated EMA) to all 10,000 real
digits in a PCA-64 of the real pixels, the same feature space for every generation space.
Usage, from the repository root:

    python studies/train_mnist/evaluate_samples.py RUN_DIR [RUN_DIR ...] [--no-fd]

Writes studies/train_mnist/results_<run name>.json and studies/train_mnist/<run name>_grid.png
(rows = classes 0..9, 10 EMA samples per row at alpha 1.5).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression

from featsel.data import load_dataset
from featsel.diagnostics.frechet import frechet_distance
from generation.evaluate import evaluate_run
from generation.sample import decode, generate, load_run, run_space, sample_run

HERE = Path(__file__).resolve().parent
ALPHAS = (1.0, 1.5, 2.0)
N_PER_CLASS = 100


def class_std(x: torch.Tensor, labels: torch.Tensor) -> float:
    """x: (B, P) pixels, labels: (B,) -> mean over classes and pixels of the per-pixel std."""
    return float(torch.stack([x[labels == c].std(0).mean() for c in labels.unique()]).mean())


def pixel_pca64():
    """sklearn PCA(64) fitted on all 10,000 real pixel digits, and their (10000, 64) features:
    one feature space shared by runs in any generation space (FD column `fd_pixel_pca64`)."""
    from sklearn.decomposition import PCA

    x = load_dataset("mnist", split="test").x.float().flatten(1).numpy()
    pca = PCA(n_components=64, random_state=0).fit(x)
    return pca, torch.from_numpy(pca.transform(x))


def classifier():
    """(fitted LogisticRegression, held-out real digits (2000, 1, 28, 28), their labels)."""
    ds = load_dataset("mnist", split="test")
    x, y = ds.x.float(), ds.labels
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:8000], perm[8000:]
    clf = LogisticRegression(max_iter=300).fit(x[tr].flatten(1).numpy(), y[tr].numpy())
    return clf, x[te], y[te]


def evaluate(run: str, clf, real: tuple, fd: bool = True, pix=None) -> dict:
    name = Path(run).name
    _, cfg, info = load_run(run)
    space = run_space(cfg)
    metrics = [json.loads(ln) for ln in open(Path(run) / "metrics.jsonl")]
    res = {"featurizer": cfg.featurizer, "step": info["step"],
           "train_time_s": round(sum(m["time_step"] for m in metrics), 1),
           "final_loss": metrics[-1]["loss"], "by_decay": {}}
    # the same real digits after a round trip through the run's generation space (the best a
    # generator in that space can reach; e.g. PCA-64 reconstructions are smoother than pixels)
    xs, ys = real
    with torch.no_grad():
        xr = decode(space, space.encode(xs)).flatten(1).clamp(-1, 1)
    res["real_roundtrip"] = {"accuracy": float(clf.score(xr.numpy(), ys.numpy())),
                             "std": round(class_std(xr, ys), 4)}
    labels = torch.arange(10).repeat_interleave(N_PER_CLASS)
    for decay in cfg.ema_decays:
        model, _, _ = load_run(run, decay=decay)
        r = {}
        for a in ALPHAS:
            x = decode(space, generate(model, labels, a, seed=1)).flatten(1).clamp(-1, 1)
            r[f"{a:g}"] = {"accuracy": float(clf.score(x.numpy(), labels.numpy())),
                           "std": round(class_std(x, labels), 4)}
            if pix is not None and decay == (cfg.eval_decay or cfg.ema_decays[0]):
                g = torch.from_numpy(pix[0].transform(x.numpy()))
                r[f"{a:g}"]["fd_pixel_pca64"] = float(frechet_distance(g, pix[1]))
        res["by_decay"][f"{decay:g}"] = r
    if fd:
        t = time.time()
        ev = evaluate_run(run, n_per_class=N_PER_CLASS, alphas=ALPHAS, kid=False)
        res["fd"] = {str(a): {k: v["fd"] for k, v in r.items()} for a, r in ev["alphas"].items()}
        res["fd_decay"] = ev.get("decay")
        res["eval_time_s"] = round(time.time() - t, 1)
    grid = HERE / f"{name}_grid.png"
    sample_run(run, alphas=(1.5,), n=10, out=grid, seed=2, space=space)
    res["grid"] = str(grid.relative_to(HERE.parents[1]))
    return res


def main(argv: list[str]) -> dict:
    torch.set_num_threads(1)
    fd = "--no-fd" not in argv
    runs = [a for a in argv if a != "--no-fd"]
    clf, xs, ys = classifier()
    pix = pixel_pca64() if fd else None
    x_te = xs.flatten(1)
    out = {"classifier": "sklearn LogisticRegression on pixels, 8000 real MNIST test digits",
           "classifier_real_accuracy": float(clf.score(x_te.numpy(), ys.numpy())),
           "real_std": round(class_std(x_te, ys), 4), "runs": {}}
    for run in runs:
        res = evaluate(run, clf, (xs, ys), fd=fd, pix=pix)
        out["runs"][Path(run).name] = res
        path = HERE / f"results_{Path(run).name}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({**out, "runs": {Path(run).name: res}}, indent=1))
        os.replace(tmp, path)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
