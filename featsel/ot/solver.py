"""Batched entropic OT solvers: `sinkhorn` (two potentials) and `sinkhorn_self` (one, damped).

Cost C_ij = ||x_i - y_j||^2 (no 1/2), entropy eps * KL(pi | a (x) b). Log-domain updates
(docs/science.md):

    f_i = -eps log sum_j b_j exp((g_j - C_ij) / eps)
    g_j = -eps log sum_i a_i exp((f_i - C_ij) / eps)
    pi_ij = a_i b_j exp((f_i + g_j - C_ij) / eps),    OT_eps = <a, f> + <b, g>

Symmetric problem OT_eps(a, a): f <- (f + T(f)) / 2, T(f)_i = -eps log sum_j a_j exp((f_j - C_ij)/eps).

Why hand-written: POT and GeomLoss solve one problem (or a fixed batch without per-problem eps,
masks or warm starts) and re-evaluate exp(-C/eps) at every iteration. On the dense backend we
run the same iterates in the kernel domain with absorption (Schmitzer 2019, "Stabilized sparse
scaling algorithms"): after one log-domain iteration the stabilised kernel
K_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) is formed once, and each further iteration is two
batched matrix-vector products on scalings u, v (f = f0 + eps log u, g = g0 + eps log v),
absorbed back into (f, g) whenever u or v leave a safe range. The iterates are those of the
log-domain algorithm (equal up to rounding), at a fraction of the cost, because no exp is taken
per iteration. Problems are processed in cache-sized chunks along the batch axis on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from featsel.ot.backends import BACKENDS, choose_backend, default_memory_budget, make_geometry
from featsel.ot.checks import check_iterations
from featsel.ot.dense import DenseGeometry
from featsel.ot.geometry import Geometry, _mask_diag_, prepare_points, sq_cost
from featsel.ot.output import SinkhornOutput
from featsel.ot.problem import OTProblem


@dataclass(frozen=True)
class SolverConfig:
    """Knobs of the solver; one place for each default.

    max_iter: iterations (one f-update and one g-update each) at most.
    tol: stop when the L1 marginal error of every problem is <= tol; 0 runs exactly max_iter.
    check_every: iterations between convergence / absorption checks (each check is one sync).
    eps_scaling: None, or a factor in (0, 1): anneal eps from the squared diameter of the data
        down to the target, one iteration per stage (as GeomLoss does), then iterate at eps.
    memory_budget: bytes the dense backend may use; `auto` picks `blocked`/`keops` beyond it.
    chunk_bytes: size of one chunk of cost matrices iterated together on the CPU (cache-sized).
    sync_free: run exactly max_iter log-domain iterations on the dense cost with no host sync
        and no value checks (`featsel.ot.fixed`; needs tol = 0 and no eps_scaling): a static
        sequence of kernels that a CUDA graph can capture.
    """

    max_iter: int = 1000
    tol: float = 1e-5
    check_every: int = 5
    eps_scaling: float | None = None
    memory_budget: int | None = None
    chunk_bytes: int = 2 << 20
    sync_free: bool = False


def eps_schedule(x: Tensor, y: Tensor, eps: Tensor, scaling: float | None) -> list[Tensor]:
    """Annealing stages eps_k = max(eps, diam^2 * scaling^k), k = 0, 1, ..., above the target.

    x: (B, N, D), y: (B, M, D), eps: (B,) -> list of (B,) tensors (empty without scaling).
    diam^2 is the squared diagonal of the bounding box of x and y: an upper bound on C.
    """
    if scaling is None:
        return []
    if not (0.0 < scaling < 1.0):
        raise ValueError(f"eps_scaling must be in (0, 1) or None, got {scaling!r}")
    pts = torch.cat([x, y], dim=1)
    diam2 = (pts.amax(1) - pts.amin(1)).pow(2).sum(-1).clamp_min(1e-12)
    ratio = float((diam2 / eps).max())
    if ratio <= 1.0:
        return []
    k = math.ceil(math.log(ratio) / -math.log(scaling))
    return [torch.maximum(eps, diam2 * scaling**i) for i in range(k)]


# --- log-domain iterations, any geometry ---------------------------------------------------


def _log_step(geom: Geometry, loga: Tensor, logb: Tensor, eps: Tensor, g: Tensor):
    """One iteration from g: returns (f, g_new). Shapes (B, N), (B, M)."""
    e = eps.unsqueeze(-1)
    f = -e * geom.lse(logb + g / e, eps, axis=1)
    return f, -e * geom.lse(loga + f / e, eps, axis=0)


def _log_step_self(geom: Geometry, loga: Tensor, eps: Tensor, f: Tensor) -> Tensor:
    e = eps.unsqueeze(-1)
    return 0.5 * (f - e * geom.lse(loga + f / e, eps, axis=1))


def _log_iterate(geom, loga, logb, eps, f, g, n, tol, check_every, symmetric):
    """Up to n log-domain iterations with convergence checks; returns (f, g, done, err), err
    not None only when the check passed (converged)."""
    e = eps.unsqueeze(-1)
    a = loga.exp()
    done, err = 0, None
    for it in range(n):
        check = tol > 0 and (it + 1) % check_every == 0
        # the update is always taken before the check stops the loop: at a large eps the
        # starting potentials (zeros) already give a plan within tol of the marginals, but the
        # value <f, a> + <g, b> is only right for the updated potentials (it was 0 instead of
        # E[C] at eps = 1e8); err is the error of the pair the update started from
        if symmetric:
            t = -e * geom.lse(loga + f / e, eps, axis=1)
            err = (a * (torch.exp((f - t) / e) - 1)).abs().sum(-1) if check else None
            f = 0.5 * (f + t)
            g = f
        else:
            f_new = -e * geom.lse(logb + g / e, eps, axis=1)
            err = (a * (torch.exp((f - f_new) / e) - 1)).abs().sum(-1) if check else None
            f = f_new
            g = -e * geom.lse(loga + f / e, eps, axis=0)
        done += 1
        if err is not None and float(err.max()) <= tol:
            break
        err = None
    return f, g, done, err


# --- kernel-domain iterations, dense chunks ----------------------------------------------


def _bmv(k: Tensor, v: Tensor) -> Tensor:
    """K v for k: (c, N, M), v: (c, M), written as the row-vector product v^T K^T: on CPUs
    `bmm(k, v[..., None])` takes a slow path (measured 9x slower for 64 x 64 x 128)."""
    return torch.bmm(v.unsqueeze(-2), k.transpose(-1, -2)).squeeze(-2)


def _bvm(u: Tensor, k: Tensor) -> Tensor:
    return torch.bmm(u.unsqueeze(-2), k).squeeze(-2)


def _kernel_iterate(cost, loga, logb, eps, f, g, n, tol, check_every, symmetric, buf):
    """n iterations in the kernel domain from valid potentials (f, g) on a dense chunk.

    cost: (c, N, M); loga: (c, N); logb: (c, M); eps: (c,); buf: a (c, N, M) scratch tensor.
    Returns (f, g, done, err) with err the row-marginal L1 error of the returned plan, or None
    when the scalings left the float range (the caller then falls back to log-domain).
    """
    e = eps.unsqueeze(-1)
    a, b = loga.exp(), logb.exp()
    lim = 30.0 if cost.dtype == torch.float32 else 200.0
    lo, hi = math.exp(-lim), math.exp(lim)

    def build(f, g):
        torch.div(cost, eps.view(-1, 1, 1), out=buf).neg_()
        buf.add_((f / e + loga).unsqueeze(-1)).add_((g / e + logb).unsqueeze(-2))
        return buf.exp_()

    k = build(f, g)
    u = torch.ones_like(f)
    v = u if symmetric else torch.ones_like(g)
    done = absorbed_at = 0
    while True:
        kv = _bmv(k, v)
        last = done == n
        check = last or done == 1 or (done > 0 and done % check_every == 0)
        if check:
            if not (bool(torch.isfinite(u).all()) and bool(torch.isfinite(v).all())):
                return f, g, absorbed_at, None  # the potentials of the last absorption are valid
            err = (u * kv - a).abs().sum(-1)
            if last or (tol > 0 and float(err.max()) <= tol):
                break
            out_of_range = bool((u.amin() < lo) | (u.amax() > hi) | (v.amin() < lo) | (v.amax() > hi))
            if out_of_range:  # absorb the scalings into the potentials, rebuild the kernel
                f = f + e * u.log()
                g = f if symmetric else g + e * v.log()
                k = build(f, g)
                u = torch.ones_like(f)
                v = u if symmetric else torch.ones_like(g)
                kv = _bmv(k, v)
                absorbed_at = done
        if symmetric:
            u = torch.sqrt(u * a / kv)
            v = u
        else:
            u = a / kv
            v = b / _bvm(u, k)
        done += 1
    f = f + e * u.log()
    g = f if symmetric else g + e * v.log()
    k.mul_(v.unsqueeze(-2))  # now pi_ij ~ u_i k_ij: the barycentric map needs no exp (see caller)
    return f, g, done, err


def _dense_chunk(geom, loga, logb, eps, f, g, cfg: SolverConfig, symmetric, kernel_ok, buf):
    """Iterate one dense chunk to `cfg.max_iter` / `cfg.tol`: log-domain steps until the
    stabilised kernel is safe, then kernel-domain iterations (falling back when they overflow).
    Returns (f, g, iterations, marginal error or None, the final kernel (`buf`, with
    pi_ij ~ u_i k_ij) when the chunk finished in the kernel domain, else None)."""
    done, err, tries = 0, None, 0
    while done < cfg.max_iter:
        # one log-domain iteration (with a convergence check) brings the potentials close
        f, g, k, err = _log_iterate(geom, loga, logb, eps, f, g, 1, cfg.tol, 1, symmetric)
        done += k
        if err is not None or done == cfg.max_iter or not kernel_ok or tries >= 8:
            break
        tries += 1
        f1, g1, more, e1 = _kernel_iterate(
            geom.cost, loga, logb, eps, f, g, cfg.max_iter - done, cfg.tol, cfg.check_every,
            symmetric, buf,
        )
        f, g, done = f1, g1, done + more
        if e1 is not None:  # finished in the kernel domain; `buf` holds the plan up to rows
            return f, g, done, e1, buf
    if done < cfg.max_iter and err is None:
        # the kernel domain kept overflowing (or is unusable: zero weights): finish in log domain
        f, g, more, err = _log_iterate(
            geom, loga, logb, eps, f, g, cfg.max_iter - done, cfg.tol, cfg.check_every, symmetric
        )
        done += more
    return f, g, done, err, None


# --- public solvers ----------------------------------------------------------------------


def _flatten_init(init, bshape, n, m, like):
    if init is None:
        z = like.new_zeros
        return z(bshape + (n,)).reshape(-1, n), z(bshape + (m,)).reshape(-1, m)
    f0, g0 = init.potentials() if isinstance(init, SinkhornOutput) else init
    f0 = torch.as_tensor(f0, dtype=like.dtype, device=like.device).detach()
    g0 = torch.as_tensor(g0, dtype=like.dtype, device=like.device).detach()
    if f0.shape != bshape + (n,) or g0.shape != bshape + (m,):
        raise ValueError(
            f"init must be potentials (f, g) of shapes {tuple(bshape + (n,))} and "
            f"{tuple(bshape + (m,))}, got {tuple(f0.shape)} and {tuple(g0.shape)}"
        )
    if not (bool(torch.isfinite(f0).all()) and bool(torch.isfinite(g0).all())):
        raise ValueError("init potentials contain NaN or Inf values")
    return f0.reshape(-1, n).clone(), g0.reshape(-1, m).clone()


def _solve(problem: OTProblem, init, backend: str, cfg: SolverConfig) -> SinkhornOutput:
    check_iterations(cfg.max_iter, cfg.tol)
    if cfg.check_every < 1:
        raise ValueError(f"check_every must be >= 1, got {cfg.check_every}")
    if cfg.sync_free:
        from featsel.ot.fixed import solve_fixed

        if cfg.tol != 0 or cfg.eps_scaling is not None or backend not in ("auto", "dense"):
            raise ValueError("sync_free=True runs a fixed number of dense iterations: it needs "
                             f"tol=0, eps_scaling=None and backend 'auto' or 'dense', got tol={cfg.tol}, "
                             f"eps_scaling={cfg.eps_scaling}, backend={backend!r}")
        return solve_fixed(problem, cfg.max_iter, init)
    x, y, a, b, eps_t = problem.x, problem.y, problem.a, problem.b, problem.eps
    mask_diagonal, symmetric = problem.mask_diagonal, problem.symmetric
    bshape = problem.batch_shape
    n, m, d = problem.sizes
    batch = bshape.numel()
    budget = cfg.memory_budget if cfg.memory_budget is not None else default_memory_budget(x.device)
    if backend == "auto":
        backend = choose_backend(batch, n, m, d, x.device, x.dtype, budget, mask_diagonal)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    af, bf, ef = a.reshape(-1, n), b.reshape(-1, m), eps_t.reshape(-1)
    f, g = _flatten_init(init, bshape, n, m, x)
    loga, logb = af.log(), bf.log()
    # problems that differ only by eps (`shared` leading axes along which both point clouds are
    # broadcast, e.g. the taus of a training block) share one dense cost: one GEMM per distinct
    # pair of point clouds, copied along the shared axes
    shared = problem.shared_axes() if backend == "dense" and cfg.eps_scaling is None else 0
    xf, yf = problem.inner_points(shared)
    xf, yf, x2, y2 = prepare_points(xf, xf if symmetric else yf)
    stages = eps_schedule(xf, yf, ef, cfg.eps_scaling)
    err = None

    if backend == "dense":
        cost = sq_cost(xf, yf, x2, y2)
        if mask_diagonal:
            _mask_diag_(cost)
        if shared:
            cost = cost.expand(bshape[:shared].numel(), *cost.shape).reshape(batch, n, m)
            xf = yf = None  # the points of the shared problems are not repeated: cost only
        kernel_ok = bool((af > 0).all()) and bool((bf > 0).all())
        chunk = batch if x.device.type == "cuda" else max(1, cfg.chunk_bytes // (n * m * x.element_size()))
        # one kernel buffer per problem (not per chunk): the final kernels are kept for the
        # barycentric map, which then costs one product instead of an exp and a softmax
        kern = torch.empty_like(cost) if kernel_ok else None
        kernels: list[Tensor | None] = []
        errs, n_done = [], 0
        for s in range(0, batch, chunk):
            sl = slice(s, s + chunk)
            sub = DenseGeometry(None if xf is None else xf[sl], None if yf is None else yf[sl],
                                mask_diagonal, cost=cost[sl])
            fc, gc, ec, lc, lb = f[sl], g[sl], ef[sl], loga[sl], logb[sl]
            for st in stages:
                if symmetric:
                    fc = gc = _log_step_self(sub, lc, st[sl], fc)
                else:
                    fc, gc = _log_step(sub, lc, lb, st[sl], gc)
            fc, gc, done, e_c, k_c = _dense_chunk(
                sub, lc, lb, ec, fc, gc, cfg, symmetric, kernel_ok,
                kern[sl] if kernel_ok else None,
            )
            kernels.append(k_c)
            f[sl], g[sl] = fc, gc
            errs.append(e_c)
            n_done = max(n_done, done + len(stages))
        if all(e is not None for e in errs):
            err = torch.cat(errs)
        geom = DenseGeometry(xf, yf, mask_diagonal, cost=cost, chunk=chunk, kernels=kernels)
    else:
        geom = make_geometry(backend, xf, yf, mask_diagonal, x2=x2, y2=y2, memory_budget=budget)
        for st in stages:
            if symmetric:
                f = g = _log_step_self(geom, loga, st, f)
            else:
                f, g = _log_step(geom, loga, logb, st, g)
        f, g, done, err = _log_iterate(
            geom, loga, logb, ef, f, g, cfg.max_iter, cfg.tol, cfg.check_every, symmetric
        )
        n_done = done + len(stages)

    out = SinkhornOutput(
        f=f.reshape(bshape + (n,)),
        g=(f if symmetric else g).reshape(bshape + (m,)),
        a=a,
        b=b,
        eps=eps_t,
        n_iter=n_done,
        backend=backend,
        geometry=geom,
        y=y,
        symmetric=symmetric,
        _marginal_error=None if err is None else err.reshape(bshape),
    )
    return out


def sinkhorn(
    x: Tensor,
    y: Tensor,
    *,
    eps: float | Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    max_iter: int = SolverConfig.max_iter,
    tol: float = SolverConfig.tol,
    init: SinkhornOutput | tuple[Tensor, Tensor] | None = None,
    backend: str = "auto",
    eps_scaling: float | None = SolverConfig.eps_scaling,
    check_every: int = SolverConfig.check_every,
    memory_budget: int | None = None,
    sync_free: bool = SolverConfig.sync_free,
) -> SinkhornOutput:
    """Entropic OT between x: (..., N, D) and y: (..., M, D), batched over the leading shape.

    a: (..., N), b: (..., M) weights (uniform by default); eps: float or (...,) tensor, > 0.
    Stops when the L1 marginal error of every problem is <= tol, or after max_iter iterations
    (tol=0 runs exactly max_iter; the paper's code runs 4). init: potentials (f, g) or an earlier
    output, for a warm start. backend: "auto" | "dense" | "blocked" | "keops" (the registry in
    `featsel.ot.backends`). sync_free: see `SolverConfig`. No gradient flows through the
    solver; inputs in half precision are promoted to float32, and the solve runs with autocast
    disabled.
    """
    problem = OTProblem.between(x, y, eps=eps, a=a, b=b, check=not sync_free)
    return solve(problem, init=init, backend=backend, max_iter=max_iter, tol=tol,
                 eps_scaling=eps_scaling, check_every=check_every, memory_budget=memory_budget,
                 sync_free=sync_free)


def sinkhorn_self(
    x: Tensor,
    *,
    eps: float | Tensor,
    a: Tensor | None = None,
    mask_diagonal: bool = False,
    max_iter: int = SolverConfig.max_iter,
    tol: float = SolverConfig.tol,
    init: SinkhornOutput | tuple[Tensor, Tensor] | Tensor | None = None,
    backend: str = "auto",
    eps_scaling: float | None = SolverConfig.eps_scaling,
    check_every: int = SolverConfig.check_every,
    memory_budget: int | None = None,
    sync_free: bool = SolverConfig.sync_free,
) -> SinkhornOutput:
    """Symmetric OT_eps(a, a) for x: (..., N, D), one potential f with the damped update.

    mask_diagonal=True sets C_ii = +inf (the paper code's self term: a point may not match
    itself). The output has g = f and value = 2 <a, f>.
    """
    problem = OTProblem.self_transport(x, eps=eps, a=a, mask_diagonal=mask_diagonal,
                                       check=not sync_free)
    if isinstance(init, Tensor):
        init = (init, init)
    return solve(problem, init=init, backend=backend, max_iter=max_iter, tol=tol,
                 eps_scaling=eps_scaling, check_every=check_every, memory_budget=memory_budget,
                 sync_free=sync_free)


def solve(
    problem: OTProblem,
    *,
    init: SinkhornOutput | tuple[Tensor, Tensor] | None = None,
    backend: str = "auto",
    **options,
) -> SinkhornOutput:
    """Solve an `OTProblem` (two potentials, or one for a symmetric problem). options: the
    fields of `SolverConfig` (max_iter, tol, check_every, eps_scaling, memory_budget,
    sync_free)."""
    try:
        cfg = SolverConfig(**options)
    except TypeError as e:
        raise ValueError(f"solver options are the fields of SolverConfig: {e}") from None
    x = problem.x
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        return _solve(problem, init, backend, cfg)
