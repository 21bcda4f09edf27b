"""Class accuracy of the MNIST study's generators, judged by the independent CNN classifier.

For every run RUN/validate/runs/<candidate>/seed<k> (the runs `featsel validate` trained):
100 EMA samples per class at each alpha in ALPHAS (the same EMA decay as `featsel evaluate`),
decoded by the VAE to pixels, clamped to [-1, 1], and classified by `teacher_eval` (a CNN
trained on the real digits with another seed and width; never used for training a featurizer or
a generator). Also the classifier's accuracy on the real digits and on their VAE round trip
(the ceiling of the generation space). Everything is the MNIST test split (the only one here).

Usage, from the repository root: python studies/mnist_vae/accuracy.py [RUN] [OUT_JSON]
(defaults runs/mnist and studies/mnist_vae/accuracy.json).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from featsel.data import load_dataset
from generation.pretrain.teacher import load_teacher
from generation.sample import decode, generate, load_run, run_space

ALPHAS = (1.0, 1.5, 2.0)
N_PER_CLASS = 100


@torch.no_grad()
def accuracy(net, x: torch.Tensor, y: torch.Tensor) -> float:
    """x: (N, 1, 28, 28) pixels in [-1, 1], y: (N,) -> fraction classified as y."""
    pred = torch.cat([net(c).argmax(1) for c in x.split(500)])
    return float((pred == y).float().mean())


def main(run: str = "runs/mnist", out: str = "studies/mnist_vae/accuracy.json") -> dict:
    torch.set_num_threads(1)
    root = Path(run)
    net = load_teacher(root / "teacher_eval" / "teacher.pt")
    ds = load_dataset("mnist", split="test")
    x, y = ds.x.float(), ds.labels
    runs = sorted(p.parent for p in (root / "validate" / "runs").glob("*/seed*/checkpoint.pt"))
    if not runs:
        raise FileNotFoundError(f"no runs under {root / 'validate' / 'runs'}")
    space = run_space(load_run(runs[0])[1])
    with torch.no_grad():
        xr = torch.cat([decode(space, space.encode(c)) for c in x.split(500)]).clamp(-1, 1)
    res = {"classifier": str(root / "teacher_eval" / "teacher.pt"),
           "real_accuracy": accuracy(net, x, y), "roundtrip_accuracy": accuracy(net, xr, y),
           "alphas": list(ALPHAS), "runs": {}}
    labels = torch.arange(10).repeat_interleave(N_PER_CLASS)
    for r in runs:
        model, cfg, meta = load_run(r)
        feat = cfg.featurizer
        acc = {}
        for a in ALPHAS:
            g = decode(space, generate(model, labels, a, seed=1)).clamp(-1, 1)
            acc[f"{a:g}"] = accuracy(net, g, labels)
        res["runs"].setdefault(feat, {})[r.name] = acc
        print(feat, r.name, acc, flush=True)
    res["mean"] = {f: {a: float(np.mean([s[a] for s in seeds.values()])) for a in
                       (f"{x:g}" for x in ALPHAS)} for f, seeds in res["runs"].items()}
    tmp = Path(out).with_name(Path(out).name + ".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    os.replace(tmp, out)
    return res


if __name__ == "__main__":
    main(*sys.argv[1:3])
