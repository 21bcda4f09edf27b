"""Class accuracy, FDs and a PNG grid for the MNIST runs of `run.sh`.

A logistic-regression classifier (scikit-learn) is fitted on 8,000 real digits of the MNIST
test split (the only split on this machine) and scored on the other 2,000 real digits and on
100 EMA samples per class at each alpha. FDs come from `featsel evaluate` (the manifest's
evaluation featurizers). Usage, from the repository root:

    python studies/train_mnist/evaluate_samples.py RUN_DIR [RUN_DIR ...]

Writes studies/train_mnist/results.json and studies/train_mnist/<run name>_grid.png.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression

from featsel.data import load_dataset
from generation.evaluate import evaluate_run
from generation.sample import generate, load_run, sample_run

HERE = Path(__file__).resolve().parent


def main(runs: list[str]) -> dict:
    torch.set_num_threads(1)
    ds = load_dataset("mnist", split="test")
    x, y = ds.x.flatten(1).numpy(), ds.labels.numpy()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0)).numpy()
    tr, te = perm[:8000], perm[8000:]
    clf = LogisticRegression(max_iter=300).fit(x[tr], y[tr])
    out = {"classifier": "sklearn LogisticRegression on pixels, 8000 real MNIST test digits",
           "classifier_real_accuracy": float(clf.score(x[te], y[te])), "runs": {}}
    for run in runs:
        name = Path(run).name
        model, cfg, info = load_run(run)
        metrics = [json.loads(ln) for ln in open(Path(run) / "metrics.jsonl")]
        res = {"featurizer": cfg.featurizer, "step": info["step"], "decay": info["decay"],
               "train_time_s": round(sum(m["time_step"] for m in metrics), 1),
               "accuracy": {}}
        labels = torch.arange(10).repeat_interleave(100)
        for a in (1.0, 1.5, 2.0):
            u = generate(model, labels, a, seed=1)
            res["accuracy"][f"{a:g}"] = float(clf.score(u.flatten(1).numpy(), labels.numpy()))
        t = time.time()
        ev = evaluate_run(run, n_per_class=100, alphas=(1.0, 1.5, 2.0), kid=False)
        res["fd"] = {a: {k: v["fd"] for k, v in r.items()} for a, r in ev["alphas"].items()}
        res["eval_time_s"] = round(time.time() - t, 1)
        grid = HERE / f"{name}_grid.png"
        sample_run(run, alphas=(1.5,), n=10, out=grid, seed=2)
        res["grid"] = str(grid.relative_to(HERE.parents[1]))
        out["runs"][name] = res
    path = HERE / "results.json"
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
