"""OT engine speed against its peers, measured in one run (ratios, never absolute goals).

    python -m benchmarks.bench_ot            # all sections (training shape, large, convergence)
    python -m benchmarks.bench_ot --quick    # a small version of each section (about a minute)
    python -m benchmarks.bench_ot --section training --threads 1 --out benchmarks/results/ot.json
    python -m benchmarks.bench_ot --device cuda --out benchmarks/results/ot_cuda.json  # on a GPU

Peers: the paper code's solver re-implemented in plain torch (alternating logsumexp over a
materialised (g - C)/eps + log b), POT's batched solver (`ot.batch.solve_batch`, log-domain),
GeomLoss's tensorized and online (KeOps) Sinkhorn loops at a fixed eps (`sinkhorn_loop` with
`eps_list = [eps] * k`; its cost is |x-y|^2/2, so it runs at eps/2, see docs/science.md). Every solver
computes its own cost matrix with the same GEMM and returns the barycentric map of x, so each
time is "points in, transport targets out". Large problems run in a subprocess each, for the
peak resident memory (ru_maxrss; on a GPU, the peak of torch's CUDA allocator) and a time
limit. With `--device cuda` every solver and peer runs on the GPU, and every timed call ends
with a `torch.cuda.synchronize()`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from featsel.ot import eps_from_tau, sinkhorn, sinkhorn_self
from featsel.ot.geometry import sq_cost

# ---- peers ----------------------------------------------------------------------------------


def paper_solver(x, y, eps, iters):
    """The paper code's solver: f, g from zero, alternating logsumexp, then the row-normalised map."""
    c = sq_cost(x, y)
    n, m = c.shape[-2:]
    e = eps.view(-1, 1, 1)
    f = x.new_zeros(x.shape[:-1])
    g = y.new_zeros(y.shape[:-1])
    for _ in range(iters):
        f = -e[..., 0] * torch.logsumexp((g.unsqueeze(-2) - c) / e - math.log(m), dim=-1)
        g = -e[..., 0] * torch.logsumexp((f.unsqueeze(-1) - c) / e - math.log(n), dim=-2)
    p = torch.softmax((g.unsqueeze(-2) - c) / e, dim=-1)
    return torch.bmm(p, y)


def pot_solver(x, y, eps, iters):
    import ot.batch

    c = sq_cost(x, y)
    # POT's batched solver takes one reg; the training-shape problems share eps here
    res = ot.batch.solve_batch(c, reg=float(eps[0]), max_iter=iters, tol=0.0,
                               method="log_sinkhorn", grad="detach")
    p = res.plan
    return torch.bmm(p / p.sum(-1, keepdim=True), y)


def geomloss_solver(x, y, eps, iters, online=False):
    from geomloss._legacy.sinkhorn_divergence import sinkhorn_loop
    from geomloss._legacy.sinkhorn_samples import softmin_tensorized

    n, m = x.shape[-2], y.shape[-2]
    a_log = x.new_full(x.shape[:-1], -math.log(n))
    b_log = y.new_full(y.shape[:-1], -math.log(m))
    e = float(eps[0]) / 2  # GeomLoss cost |x-y|^2 / 2 at eps / 2 is our problem
    if online:
        from pykeops.torch import LazyTensor

        xi, yj = LazyTensor(x[:, :, None, :]), LazyTensor(y[:, None, :, :])
        c_xy = ((xi - yj) ** 2).sum(-1) / 2
        c_yx = ((LazyTensor(y[:, :, None, :]) - LazyTensor(x[:, None, :, :])) ** 2).sum(-1) / 2
        out = sinkhorn_loop(softmin_online_batched, a_log, b_log, None, None, c_xy, c_yx, [e] * iters, None,
                            debias=False)
        g = out[2]
        hj = LazyTensor((b_log + g / e)[:, None, :, None])
        return (hj - c_xy / e).sumsoftmaxweight(LazyTensor(y[:, None, :, :]), dim=2)
    c = sq_cost(x, y) / 2
    out = sinkhorn_loop(softmin_tensorized, a_log, b_log, None, None, c, c.transpose(-1, -2),
                        [e] * iters, None, debias=False)
    g = out[2]
    p = torch.softmax((b_log + g / e).unsqueeze(-2) - c / e, dim=-1)
    return torch.bmm(p, y)


def softmin_online_batched(eps, c_xy, h_y):
    from pykeops.torch import LazyTensor

    hj = LazyTensor(h_y[:, None, :, None])
    return -eps * (hj - c_xy / eps).logsumexp(dim=2).squeeze(-1)


def paper_self(x, eps, iters):
    """The paper code's self term: C_ii = +inf, damped symmetric updates from zero."""
    c = sq_cost(x, x)
    c.diagonal(dim1=-2, dim2=-1).fill_(math.inf)
    n = c.shape[-1]
    e = eps.view(-1, 1)
    f = x.new_zeros(x.shape[:-1])
    for _ in range(iters):
        t = -e * torch.logsumexp((f.unsqueeze(-2) - c) / e.unsqueeze(-1) - math.log(n), dim=-1)
        f = 0.5 * (f + t)
    p = torch.softmax((f.unsqueeze(-2) - c) / e.unsqueeze(-1), dim=-1)
    return torch.bmm(p, x)


def ours_self(x, eps, iters):
    return sinkhorn_self(x, eps=eps, mask_diagonal=True, tol=0, max_iter=iters).barycentric_map()


def ours(x, y, eps, iters, backend="auto"):
    out = sinkhorn(x, y, eps=eps, tol=0, max_iter=iters, backend=backend)
    return out.barycentric_map()


def matmul_floor(x, y, p):
    """The unavoidable products: the cost matrices and pi @ y."""
    c = sq_cost(x, y)
    return torch.bmm(p, y), c


# ---- timing ---------------------------------------------------------------------------------

DEVICE = torch.device("cpu")  # set by --device


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def timeit(fn, repeats, *args, **kwargs):
    """Fastest wall time of fn(*args, **kwargs) over `repeats` runs after one warm-up (the
    minimum is the estimate least disturbed by other jobs on a shared machine); on a GPU each
    run is timed from a synchronized start to its synchronized end."""
    fn(*args, **kwargs)  # warm-up (allocations, KeOps compiles)
    times = []
    for _ in range(repeats):
        _sync()
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        _sync()
        times.append(time.perf_counter() - t)
    return min(times), out


def training_section(quick, repeats, sizes=None, on_row=None):
    rows = []
    if sizes is None:
        sizes = [(257, 64)] if quick else [(257, 64), (1028, 64), (257, 1280), (1028, 1280)]
    shapes = [("cross", 64, 128)] if quick else [("cross", 64, 128), ("uncond", 64, 32),
                                                   ("self", 64, 64)]
    for L, D in sizes:
        for shape, n, m in shapes:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(L, n, D, generator=g).to(DEVICE)
            y = (torch.randn(L, m, D, generator=g) + 0.2).to(DEVICE)
            eps = eps_from_tau(x, y, 0.05)
            eps_shared = eps.mean().expand(L).contiguous()  # POT needs one eps for the batch
            # the paper's code: 4 cross / 2 self iterations; 50 where iterations dominate
            for iters in ([2, 50] if shape == "self" else [4, 50]):
                if D == 1280 and iters == 50 and quick:
                    continue
                row = {"L": L, "D": D, "shape": f"{shape} {n}x{m}", "iters": iters}
                if shape == "self":  # masked diagonal, damped symmetric updates
                    y = x
                    args, mine = (x, eps_shared, iters), ours_self
                    peers = {"paper": paper_self}
                else:
                    args, mine = (x, y, eps_shared, iters), ours
                    peers = {"paper": paper_solver, "pot": pot_solver,
                             "geomloss_tensorized": geomloss_solver}
                t_ours, t_map = timeit(mine, repeats, *args)
                row["ours_s"] = t_ours
                for name, fn in peers.items():
                    t, tm = timeit(fn, repeats, *args)
                    row[f"{name}_s"] = t
                    row[f"{name}_maxdiff"] = float((tm - t_map).abs().max())
                best = min(row[f"{k}_s"] for k in peers)
                row["speedup_vs_best_peer"] = best / t_ours
                p = torch.softmax(torch.randn(L, n, m), -1).to(DEVICE)
                row["matmul_floor_s"], _ = timeit(matmul_floor, repeats, x, y, p)
                row["ours_over_floor"] = t_ours / row["matmul_floor_s"]
                rows.append(row)
                print(json.dumps(row), flush=True)
                if on_row:
                    on_row(rows)
    return rows


def clustered(n, d, k, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 3
    lab = torch.randint(0, k, (n,), generator=g)
    return centres[lab] + 0.3 * torch.randn(n, d, generator=g)


def converge_section(quick, repeats, on_row=None):
    """Time to a marginal error of 1e-4 at eps = 0.02 std(C) on clustered data."""
    from geomloss import SamplesLoss

    rows = []
    for n, d in ([(500, 16)] if quick else [(500, 16), (2000, 64)]):
        x, y = clustered(n, d, 10, 0).to(DEVICE), clustered(n, d, 10, 1).to(DEVICE)
        eps = float(eps_from_tau(x, y, 0.02))
        row = {"N": n, "D": d, "eps": eps, "target_error": 1e-4}
        t, out = timeit(sinkhorn, repeats, x, y, eps=eps, tol=1e-4, max_iter=100000)
        row.update(ours_s=t, ours_iters=out.n_iter, ours_error=float(out.marginal_error))
        c = sq_cost(x[None], y[None])[0]
        best = None
        errors = {}
        for scaling in (0.5, 0.8, 0.9, 0.95, 0.99):  # one untimed solve each, then time the first
            loss = SamplesLoss("sinkhorn", p=2, blur=math.sqrt(eps / 2), scaling=scaling,
                               debias=False, potentials=True, backend="tensorized")
            F, G = (t.reshape(-1) for t in loss(x, y))  # GeomLoss returns (1, N) potentials
            # GeomLoss potentials solve OT_{eps/2}[C/2]: ours are f = 2F, g = 2G
            logpi = (2 * F[:, None] + 2 * G[None, :] - c) / eps - 2 * math.log(n)
            err = float((logpi.exp().sum(1) - 1 / n).abs().sum())
            err = max(err, float((logpi.exp().sum(0) - 1 / n).abs().sum()))
            errors[str(scaling)] = err
            if err <= 1e-4:
                tg, _ = timeit(loss, repeats, x, y)
                best = {"geomloss_s": tg, "geomloss_scaling": scaling, "geomloss_error": err}
                break
        if best is None:
            best = {"geomloss_s": None, "geomloss_errors": errors,
                    "geomloss_note": "no scaling <= 0.99 reached 1e-4"}
        row.update(best)
        if best.get("geomloss_s"):
            row["speedup_vs_geomloss"] = best["geomloss_s"] / row["ours_s"]
        # POT's log-domain solver to the same marginal error (its stopThr is the L2 error of
        # the column marginal; 1e-4 / sqrt(N) bounds the L1 error by 1e-4)
        import ot

        w = torch.full((n,), 1.0 / n, dtype=torch.float64, device=DEVICE)
        cd = c.double()
        tp, plan = timeit(ot.sinkhorn, repeats, w, w, cd, eps, method="sinkhorn_log",
                          numItermax=100000, stopThr=1e-4 / math.sqrt(n))
        row["pot_s"] = tp
        row["pot_error"] = float((plan.sum(1) - w).abs().sum() + (plan.sum(0) - w).abs().sum())
        row["speedup_vs_pot"] = tp / row["ours_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
        if on_row:
            on_row(rows)
    return rows


# ---- large problems, one subprocess per measurement -------------------------------------------

LARGE_ITERS = 10


def large_worker(spec):
    global DEVICE
    torch.set_num_threads(spec["threads"])
    DEVICE = torch.device(spec.get("device", "cpu"))
    n, d, solver = spec["N"], spec["D"], spec["solver"]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, n, d, generator=g).to(DEVICE)
    y = (torch.randn(1, n, d, generator=g) + 0.2).to(DEVICE)
    eps = eps_from_tau(x, y, 0.05)
    # compile (or load) KeOps formulas; on a GPU also CUDA's context and kernels
    if solver.endswith("keops") or solver.endswith("online") or DEVICE.type == "cuda":
        _run_large(solver, x[:, :64], y[:, :64], eps, 1)
    _sync()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats(DEVICE)
        gpu_base = torch.cuda.memory_allocated(DEVICE) / 2**20
    t = time.perf_counter()
    _run_large(solver, x, y, eps, LARGE_ITERS)
    _sync()
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux
    row = {"seconds": wall, "peak_rss_mib": rss, "extra_rss_mib": rss - base}
    if DEVICE.type == "cuda":
        row["extra_gpu_mib"] = torch.cuda.max_memory_allocated(DEVICE) / 2**20 - gpu_base
    print(json.dumps(row))


def _run_large(solver, x, y, eps, iters):
    if solver.startswith("ours-"):
        ours(x, y, eps, iters, backend=solver[5:])
    elif solver == "geomloss-tensorized":
        geomloss_solver(x, y, eps, iters)
    elif solver == "geomloss-online":
        geomloss_solver(x, y, eps, iters, online=True)


LARGE_SOLVERS = ["ours-auto", "ours-dense", "ours-blocked", "ours-keops", "geomloss-tensorized",
                 "geomloss-online"]


def large_section(quick, threads, limit_s, sizes=None, solvers=None):
    if sizes is None:
        sizes = [(2048, 64)] if quick else [(2048, 64), (2048, 768), (8192, 64), (8192, 768),
                                            (20000, 64), (20000, 768)]
    if solvers is None:
        solvers = ["ours-auto", "ours-blocked", "geomloss-tensorized"] if quick else LARGE_SOLVERS
    rows = []
    for n, d in sizes:
        for solver in solvers:
            spec = {"N": n, "D": d, "solver": solver, "threads": threads, "device": str(DEVICE)}
            row = dict(spec, iters=LARGE_ITERS)
            try:
                res = subprocess.run(
                    [sys.executable, "-m", "benchmarks.bench_ot", "--worker", json.dumps(spec)],
                    capture_output=True, text=True, timeout=limit_s,
                    env=dict(os.environ, OMP_NUM_THREADS=str(threads)),
                )
                lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
                if res.returncode == 0 and lines:
                    row.update(json.loads(lines[-1]))
                else:  # the last words of the worker (KeOps reports on stdout), and its exit
                    tail = (res.stderr + res.stdout).strip().splitlines() or ["no output"]
                    row["error"] = f"exit {res.returncode}: {tail[-1][:200]}"
            except subprocess.TimeoutExpired:
                row["seconds"] = None
                row["note"] = f"over the {limit_s} s limit"
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def markdown(results):
    """Markdown tables of a results dict (as written by --out)."""
    lines = [f"device: {results.get('device', 'cpu')} {results.get('device_name', '')}, "
             f"threads: {results.get('threads')}, torch {results.get('torch')}", ""]
    if results.get("training"):
        lines += ["| L | D | shape | iters | ours s | paper s | POT s | GeomLoss s | "
                  "speedup vs best peer | matmul floor s | ours / floor |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["training"]:
            lines.append(
                f"| {r['L']} | {r['D']} | {r['shape']} | {r['iters']} | {r['ours_s']:.3f} | "
                f"{r['paper_s']:.3f} | {r.get('pot_s', float('nan')):.3f} | "
                f"{r.get('geomloss_tensorized_s', float('nan')):.3f} | "
                f"**{r['speedup_vs_best_peer']:.2f}x** | {r['matmul_floor_s']:.3f} | "
                f"{r['ours_over_floor']:.2f} |")
        lines.append("")
    if results.get("converge"):
        lines += ["| N | D | ours s (iters, error) | POT s | GeomLoss s (scaling) |",
                  "|---|---|---|---|---|"]
        for r in results["converge"]:
            gl = (f"{r['geomloss_s']:.3f} ({r['geomloss_scaling']})" if r.get("geomloss_s")
                  else r.get("geomloss_note", "-"))
            lines.append(f"| {r['N']} | {r['D']} | {r['ours_s']:.3f} ({r['ours_iters']}, "
                         f"{r['ours_error']:.1e}) | {r.get('pot_s', float('nan')):.3f} | {gl} |")
        lines.append("")
    if results.get("large"):
        gpu = any("extra_gpu_mib" in r for r in results["large"])
        mem, key = ("extra GPU MiB", "extra_gpu_mib") if gpu else ("extra RSS MiB", "extra_rss_mib")
        lines += [f"| N | D | solver | seconds | {mem} | note |", "|---|---|---|---|---|---|"]
        for r in results["large"]:
            sec = f"{r['seconds']:.3f}" if r.get("seconds") else "-"
            m = f"{r[key]:.0f}" if r.get(key) is not None else "-"
            lines.append(f"| {r['N']} | {r['D']} | {r['solver']} | {sec} | {m} | "
                         f"{r.get('note', r.get('error', ''))} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (the demo)")
    ap.add_argument("--section", choices=["training", "large", "converge", "all"], default="all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i]: where every solver runs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=float, default=300.0, help="seconds per large measurement")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--training-sizes", default=None,
                    help="training-shape problems as LxD,LxD,... (default: 257/1028 x 64/1280)")
    ap.add_argument("--large-sizes", default=None,
                    help="large problems as NxD,NxD,... (default: all six of the issue)")
    ap.add_argument("--solvers", default=None,
                    help=f"large-problem solvers, comma-separated, from {LARGE_SOLVERS}")
    ap.add_argument("--markdown", type=Path, default=None,
                    help="print the tables of an earlier --out JSON as markdown and exit")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    if args.worker:
        large_worker(json.loads(args.worker))
        return 0
    torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available")
    results = {"threads": args.threads, "torch": torch.__version__, "quick": args.quick,
               "device": str(DEVICE)}
    if DEVICE.type == "cuda":
        results["device_name"] = torch.cuda.get_device_name(DEVICE)

    def save(key=None, rows=None):  # after every row: a killed run keeps what it measured
        if key:
            results[key] = rows
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=1))
            os.replace(tmp, args.out)

    if args.section in ("training", "all"):
        sizes = None
        if args.training_sizes:
            sizes = [tuple(int(v) for v in it.split("x")) for it in args.training_sizes.split(",")]
        results["training"] = training_section(args.quick, 1 if args.quick else args.repeats,
                                               sizes, lambda rows: save("training", rows))
    if args.section in ("converge", "all"):
        results["converge"] = converge_section(args.quick, 1 if args.quick else args.repeats,
                                               lambda rows: save("converge", rows))
    if args.section in ("large", "all"):
        sizes = None
        if args.large_sizes:
            sizes = [tuple(int(v) for v in item.split("x")) for item in args.large_sizes.split(",")]
        solvers = args.solvers.split(",") if args.solvers else None
        results["large"] = large_section(args.quick, args.threads, args.limit, sizes, solvers)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
