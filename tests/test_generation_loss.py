"""Sinkhorn-CFG loss: the field against a direct computation (the official code's algorithm,
written out here in float64) and against POT at convergence; options; gradient; autocast."""

import math

import numpy as np
import pytest
import torch

from featsel.ot import cfg_field
from generation.loss import LossConfig, SinkhornCFGLoss

torch.set_num_threads(1)


def _direct_sinkhorn(C, eps, n, y):
    """Alternating log-domain updates from zero potentials, uniform weights; row-normalised
    barycentric map softmax((f + g - C) / eps) @ y.  C: (P, N, M), y: (P, M, D)."""
    P, N, M = C.shape
    f = torch.zeros(P, N, dtype=C.dtype)
    g = torch.zeros(P, M, dtype=C.dtype)
    for _ in range(n):
        f = -eps * torch.logsumexp((g[:, None, :] - C) / eps - math.log(M), dim=2)
        g = -eps * torch.logsumexp((f[:, :, None] - C) / eps - math.log(N), dim=1)
    pi = torch.softmax((f[:, :, None] + g[:, None, :] - C) / eps, dim=2)
    return pi @ y


def _direct_self(q, eps, n, mask):
    P, N, _ = q.shape
    C = torch.cdist(q, q) ** 2
    if mask:
        C = C + torch.diag(torch.full((N,), float("inf"), dtype=C.dtype))
    f = torch.zeros(P, N, dtype=C.dtype)
    for _ in range(n):
        f = 0.5 * (f - eps * torch.logsumexp((f[:, None, :] - C) / eps - math.log(N), dim=2))
    pi = torch.softmax((f[:, :, None] + f[:, None, :] - C) / eps, dim=2)
    return pi @ q


def _direct_field(q, p, r, w, taus, iters=4, self_iters=2, mask=True, normalize=True):
    """q: (K, L, N, C) etc. in float64 -> summed field (K, L, N, C), lambdas (T, K, L)."""
    K, L, N, C = q.shape
    qf, pf, rf = (t.reshape(K * L, *t.shape[2:]) for t in (q, p, r))
    Cqp, Cqr = torch.cdist(qf, pf) ** 2, torch.cdist(qf, rf) ** 2
    std = Cqp.std(unbiased=False)  # over every entry of the block (the official code)
    wb = w.repeat_interleave(L)[:, None, None]
    total, lams = 0, []
    for tau in taus:
        eps = tau * std
        V = (1 + wb) * _direct_sinkhorn(Cqp, eps, iters, pf) - wb * _direct_sinkhorn(
            Cqr, eps, iters, rf) - _direct_self(qf, eps, self_iters, mask)
        lam = (V.pow(2).mean(dim=(1, 2)) + 1e-8).sqrt()
        lams.append(lam.reshape(K, L))
        total = total + (V / lam[:, None, None] if normalize else V)
    return total.reshape(K, L, N, C), torch.stack(lams)


def _problem(K=3, L=4, N=12, M=20, U=10, C=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(K, L, N, C, generator=g, dtype=torch.float64)
    p = torch.randn(K, L, M, C, generator=g, dtype=torch.float64) * 0.8 + 0.7
    r = torch.randn(K, L, U, C, generator=g, dtype=torch.float64) * 1.3
    w = torch.tensor([0.0, 0.7, 2.5], dtype=torch.float64)[:K]
    return q, p, r, w


@pytest.mark.parametrize("mask,normalize", [(True, True), (False, True), (True, False)])
def test_field_matches_direct_computation(mask, normalize):
    q, p, r, w = _problem()
    cfg = LossConfig(self_term="masked" if mask else "unmasked",
                     field="normalized" if normalize else "raw")
    V, out = cfg_field(q.float(), p.float(), r.float(), w.float(), cfg)
    V_ref, lam_ref = _direct_field(q, p, r, w, cfg.taus, mask=mask, normalize=normalize)
    scale = V_ref.abs().max()
    assert (V.double() - V_ref).abs().max() / scale < 2e-5
    assert torch.allclose(out["lam"].double(), lam_ref, rtol=2e-5)


@pytest.mark.parametrize("block_weight", ["problems", "equal"])
def test_loss_value_and_gradient_are_mse_to_stopgrad_target(block_weight):
    """loss = sum_b w_b MSE_b(q, q + V), w_b = L_b / sum L ("problems": every OT sub-problem
    weighs the same) or 1 / n_blocks ("equal"); grad_q = -2 w_b V / numel_b."""
    q, p, r, w = _problem()
    q2, p2, r2, _ = _problem(L=1, C=3, seed=1)
    blocks, refs, weight = {}, {}, {}
    for name, (a, b, c) in {"loc": (q, p, r), "glob": (q2, p2, r2)}.items():
        gen = a.float().permute(0, 2, 1, 3).clone().requires_grad_(True)  # (K, N, L, C)
        blocks[name] = (gen, b.float().permute(0, 2, 1, 3), c.float().permute(0, 2, 1, 3))
        refs[name] = _direct_field(a, b, c, w, LossConfig().taus)[0]
        weight[name] = a.shape[1] / (q.shape[1] + 1) if block_weight == "problems" else 0.5
    loss_fn = SinkhornCFGLoss(LossConfig(block_weight=block_weight), num_classes=3)
    loss, info = loss_fn(blocks, w.float(), torch.arange(3))
    expected = sum(weight[k] * refs[k].pow(2).mean().item() for k in refs)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    for name, (gen, _, _) in blocks.items():
        V = refs[name].permute(0, 2, 1, 3)
        want = -2 * weight[name] * V / V.numel()
        assert torch.allclose(gen.grad.double(), want, atol=1e-5 * want.abs().max().item())
    if block_weight == "problems":
        # regression (issue 5): a one-location block must not outweigh a many-location block
        # per sub-problem: gradient norm per location, one-location block / L-location block
        per_loc = {k: g.grad.norm() ** 2 / g.shape[2] for k, (g, _, _) in blocks.items()}
        ratio = (per_loc["glob"] / per_loc["loc"]).sqrt().item()
        assert ratio < 1.5, ratio  # "equal" gives 3.1 here
    for key in ("lambda", "marginal_error/cond", "marginal_error/uncond", "marginal_error/self"):
        assert torch.isfinite(info[key])
    assert info["time_ot"] > 0


def test_converged_field_matches_pot():
    """iterations='converged', eps per problem: T maps from POT's plans (float64)."""
    ot = pytest.importorskip("ot")
    q, p, r, w = _problem(K=2, L=2, N=10, M=14, U=9, C=3)
    cfg = LossConfig(iterations="converged", tol=1e-7, max_iter=20000, taus=(0.2,),
                     field="raw", eps_scope="problem", self_term="unmasked")
    V, _ = cfg_field(q.float(), p.float(), r.float(), w[:2].float(), cfg)
    for k in range(2):
        for loc in range(2):
            x, y, z = q[k, loc].numpy(), p[k, loc].numpy(), r[k, loc].numpy()
            eps = 0.2 * ot.dist(x, y).std()

            def bary(a_, b_, eps=eps):
                C = ot.dist(a_, b_)
                P = ot.sinkhorn(ot.unif(len(a_)), ot.unif(len(b_)), C, eps,
                                method="sinkhorn_log", numItermax=100000, stopThr=1e-12)
                return P @ b_ / P.sum(1, keepdims=True)

            wk = float(w[k])
            ref = (1 + wk) * bary(x, y) - wk * bary(x, z) - bary(x, x)
            assert np.abs(V[k, loc].double().numpy() - ref).max() < 1e-3 * np.abs(ref).max()


def test_warm_start_is_keyed_per_block_tau_class_and_continues_the_solve():
    q, p, r, w = _problem()
    blocks = {"a": tuple(t.float().permute(0, 2, 1, 3) for t in (q, p, r)),
              "b": tuple((2 * t + 1).float().permute(0, 2, 1, 3) for t in (q, p, r))}
    loss_fn = SinkhornCFGLoss(LossConfig(warm_start=True), num_classes=5)
    classes = torch.tensor([4, 0, 2])
    loss_fn(blocks, w.float(), classes)
    cache = loss_fn.state_dict()
    assert {"a|f_c", "b|f_c", "a|f_s", "b|g_u"} <= set(cache)
    assert cache["a|f_c"].shape == (3, 5, 4, 12)  # (taus, classes, locations, N)
    assert not torch.equal(cache["a|f_c"], cache["b|f_c"])
    assert torch.all(cache["a|f_c"][:, 1] == 0) and torch.any(cache["a|f_c"][:, 4] != 0)
    # a second solve from the stored potentials continues the first: 4/2 twice == 8/4 once
    init = {k.split("|")[1]: v[:, classes] for k, v in cache.items() if k.startswith("a|")}
    warm, _ = cfg_field(q.float(), p.float(), r.float(), w.float(), LossConfig(), init)
    longer, _ = cfg_field(q.float(), p.float(), r.float(), w.float(),
                          LossConfig(cross_iters=8, self_iters=4))
    cold, _ = cfg_field(q.float(), p.float(), r.float(), w.float(), LossConfig())
    assert (warm - longer).abs().max() < 1e-4 * longer.abs().max()
    assert (cold - longer).abs().max() > 1e-2 * longer.abs().max()


def test_ot_runs_in_float32_under_bf16_autocast():
    q, p, r, w = _problem()
    V, _ = cfg_field(q.float(), p.float(), r.float(), w.float(), LossConfig())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        V2, _ = cfg_field(q.float(), p.float(), r.float(), w.float(), LossConfig())
        V3, _ = cfg_field(q.bfloat16(), p.bfloat16(), r.bfloat16(), w.float(), LossConfig())
    assert V2.dtype == torch.float32 and torch.equal(V, V2)
    assert V3.dtype == torch.float32


def test_no_unconditional_set_means_plain_divergence_field():
    q, p, r, w = _problem()
    V, out = cfg_field(q.float(), p.float(), None, torch.zeros(3), LossConfig())
    V_ref, _ = _direct_field(q, p, r, torch.zeros(3, dtype=torch.float64), LossConfig().taus)
    assert (V.double() - V_ref).abs().max() < 2e-5 * V_ref.abs().max()
    assert "err_u" not in out


@pytest.mark.parametrize("kw,msg", [
    (dict(taus=()), "loss.taus"), (dict(iterations="some"), "loss.iterations"),
    (dict(self_term="x"), "loss.self_term"), (dict(cross_iters=0), "loss.cross_iters"),
    (dict(field="unit"), "loss.field"),
])
def test_bad_loss_options(kw, msg):
    with pytest.raises(ValueError, match=msg):
        LossConfig(**kw).validate()
