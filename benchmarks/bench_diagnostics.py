"""Diagnostics speed against their references, measured in one run (ratios, never goals typed in).

    python -m benchmarks.bench_diagnostics --quick          # small sizes (about a minute)
    python -m benchmarks.bench_diagnostics --section frechet --threads 1
    python -m benchmarks.bench_diagnostics --section score --data mnist --out benchmarks/results/diag.json

Sections:
- frechet: FD from statistics at D in --dims (default 2048, 4096): SciPy's ``sqrtm(S1 @ S2)``
  route (pytorch-fid's) vs featsel's symmetric route (``frechet_distance_from_statistics``) and
  vs a ``FrechetReference`` whose square-root factor is computed once (per-comparison time;
  the one-off factor time is reported too). Relative agreement with the SciPy value is checked.
- ridge: kernel ridge, 2048 train rows, 1280 -> 2048 dims: scikit-learn ``KernelRidge``
  fit + predict vs ``fit_kernel_ridge`` (float64 Cholesky in torch); max prediction difference.
- stability: one Delta_OT draw (two cross solves + barycentric maps) on a pool of --pool x --dim
  at n = --n with the dense, blocked and KeOps backends of featsel.ot, and GeomLoss's online
  Sinkhorn (potentials, then the map), each in a subprocess for peak memory.
- score: ``featsel score`` on --data with the manifest's candidates plus two more (6 in all):
  wall time and each stage's share.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _spd(d: int, rng, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(d, d + d // 2))
    return scale * (a @ a.T) / a.shape[1]


def bench_frechet(dims, repeats: int = 3) -> list[dict]:
    import scipy.linalg

    from featsel.diagnostics import FrechetReference, frechet_distance_from_statistics

    rows = []
    rng = np.random.default_rng(0)
    for d in dims:
        s1, s2 = _spd(d, rng), _spd(d, rng, 1.3)
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        t = time.perf_counter()
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2)
                    - 2 * np.trace(covmean.real))
        t_scipy = time.perf_counter() - t
        t = time.perf_counter()
        fd_sym = frechet_distance_from_statistics(mu1, s1, mu2, s2)
        t_sym = time.perf_counter() - t
        t = time.perf_counter()
        reference = FrechetReference(mu1, s1)
        t_factor = time.perf_counter() - t
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fd_reuse = reference.distance(mu2, s2)
            times.append(time.perf_counter() - t)
        t_reuse = float(np.median(times))
        rows.append({"dim": d, "scipy_sqrtm_s": t_scipy, "symmetric_s": t_sym,
                     "reference_factor_once_s": t_factor, "reuse_per_comparison_s": t_reuse,
                     "speedup_symmetric": t_scipy / t_sym, "speedup_reuse": t_scipy / t_reuse,
                     "rel_diff_symmetric": abs(fd_sym - ref) / abs(ref),
                     "rel_diff_reuse": abs(fd_reuse - ref) / abs(ref), "fd": ref})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_ridge(n_train=2048, n_test=512, d_in=1280, d_out=2048) -> dict:
    from sklearn.kernel_ridge import KernelRidge

    from featsel.diagnostics import fit_kernel_ridge

    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(n_train + n_test, d_in, generator=g,
                                                  dtype=torch.float64), dim=1)
    y = torch.nn.functional.normalize(torch.tanh(x @ torch.randn(d_in, d_out, generator=g,
                                                                 dtype=torch.float64)), dim=1)
    gamma, ridge = 0.5, 1e-2
    xtr, ytr, xte = x[:n_train], y[:n_train], x[n_train:]
    ybar = ytr.mean(0, keepdim=True)
    t = time.perf_counter()
    ref = KernelRidge(kernel="rbf", gamma=gamma, alpha=ridge).fit(
        xtr.numpy(), (ytr - ybar).numpy()).predict(xte.numpy()) + ybar.numpy()
    t_sk = time.perf_counter() - t
    t = time.perf_counter()
    got = fit_kernel_ridge(xtr, ytr, xte, gamma=gamma, ridge=ridge).numpy()
    t_torch = time.perf_counter() - t
    row = {"n_train": n_train, "d_in": d_in, "d_out": d_out, "sklearn_s": t_sk, "torch_s": t_torch,
           "speedup": t_sk / t_torch, "max_abs_diff": float(np.abs(got - ref).max())}
    print(json.dumps(row), flush=True)
    return row


_STAB_CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(int(sys.argv[5]))
pool, dim, n, backend = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
g = torch.Generator().manual_seed(0)
z = torch.randn(pool, 16, generator=g)
P = torch.tanh(z @ torch.randn(16, dim, generator=g)) + 0.05 * torch.randn(pool, dim, generator=g)
perm = torch.randperm(pool, generator=g)
x, y1, y2 = P[perm[:n]], P[perm[n:2 * n]], P[perm[2 * n:3 * n]]
sigma2 = float((P - P.mean(0)).square().sum(1).mean())
t = time.perf_counter()
if backend == "geomloss":
    from geomloss import SamplesLoss
    from featsel.ot import eps_from_tau
    maps = []
    for y in (y1, y2):
        eps = float(eps_from_tau(x, y, 0.05))
        # GeomLoss cost |x-y|^2/2 at blur^2 = eps/2 is our problem at eps (docs/science.md)
        loss = SamplesLoss("sinkhorn", p=2, blur=(eps / 2) ** 0.5, scaling=0.9, debias=False,
                           potentials=True, backend="online")
        f, gpot = loss(x, y)
        from pykeops.torch import LazyTensor
        xi, yj = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :])
        gj = LazyTensor(gpot[None, :, None])
        e2 = eps / 2
        logk = (gj - ((xi - yj) ** 2).sum(-1) / 2) / e2
        maps.append(logk.sumsoftmaxweight(yj, axis=1))
    delta = float((maps[0] - maps[1]).square().sum(1).mean() / (2 * sigma2))
    iters = -1
else:
    from featsel.diagnostics import barycentric_disagreement
    d, info = barycentric_disagreement(x, y1, y2, sigma2=sigma2, tau=0.05, backend=backend,
                                       max_iter=1000, tol=1e-4)
    delta, iters = float(d), int(info["n_iter"])
dt = time.perf_counter() - t
print(json.dumps({"backend": backend, "seconds": dt, "delta": delta, "iterations": iters,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_stability(pool: int, dim: int, n: int, threads: int, timeout: int) -> list[dict]:
    rows = []
    for backend in ("dense", "blocked", "keops", "geomloss"):
        cmd = [sys.executable, "-c", _STAB_CHILD, str(pool), str(dim), str(n), backend,
               str(threads)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            line = [s for s in r.stdout.splitlines() if s.startswith("{")]
            row = json.loads(line[-1]) if line else {"backend": backend,
                                                     "error": r.stderr.strip()[-300:]}
        except subprocess.TimeoutExpired:
            row = {"backend": backend, "error": f"timeout after {timeout}s"}
        row.update(pool=pool, dim=dim, n=n)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def bench_score(data: str, extra: list[str], **options) -> dict:
    import tempfile

    from featsel.data import load_manifest
    from featsel.score import ScoreConfig, run_score

    m = load_manifest(data)
    cands = list(m.candidates) + list(extra)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = run_score(ScoreConfig(data=data, featurizers=cands, progress=False,
                                    cache=False, **options),
                        Path(tmp) / "out")
        wall = time.perf_counter() - t
    timings = res["timings"]
    total = timings.pop("total")
    row = {"data": data, "candidates": cands, "n_pool": res["settings"]["n_pool"], "wall_s": wall,
           "stage_s": timings, "stage_share": {k: v / total for k, v in timings.items()},
           "order": res["ranking"]["order"]}
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--section", choices=["all", "frechet", "ridge", "stability", "score"],
                   default="all")
    p.add_argument("--quick", action="store_true", help="small sizes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dims", default="2048,4096")
    p.add_argument("--pool", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=1280)
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--data", default="mnist")
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    out: dict = {"threads": a.threads, "torch": torch.__version__}
    secs = ["frechet", "ridge", "stability", "score"] if a.section == "all" else [a.section]
    if "frechet" in secs:
        dims = [256, 512] if a.quick else [int(v) for v in a.dims.split(",")]
        out["frechet"] = bench_frechet(dims)
    if "ridge" in secs:
        out["ridge"] = bench_ridge(512, 128, 256, 512) if a.quick else bench_ridge()
    if "stability" in secs:
        out["stability"] = (bench_stability(2000, 16, 256, a.threads, a.timeout) if a.quick
                            else bench_stability(a.pool, a.dim, a.n, a.threads, a.timeout))
    if "score" in secs:
        if a.quick:
            out["score"] = bench_score("digits", ["pca:dim=32", "random-projection:dim=32"],
                                       max_samples=600)
        else:
            out["score"] = bench_score(a.data, ["pca:dim=16", "random-projection:dim=128"])
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if a.out:
        path = Path(a.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
