"""The Sinkhorn-CFG loss (paper Section 3.2, Appendix C.1) on `featsel.ot`.

For every feature block, class c and location l (an independent OT problem in R^C), with
generated features q (N_gen), class-real r_c (N_pos), unconditional real r (N_unc), guidance
w_c = alpha_c - 1 and each tau in `taus`, the field is `featsel.ot.cfg_field` (the OT package
owns it; this module only turns it into a loss):

    eps     = tau * std(C_qr_c entries)                  (one value per block: the paper code)
    V_tau   = (1 + w) T_{q r_c}(q_i) - w T_{q r}(q_i) - T_{q q}(q_i)     three solves
    lam     = sqrt(mean_{i, d} V_tau^2 + 1e-8)           per (class, location, tau): "lambda"
    V       = sum_tau V_tau / lam                         ("normalized"; "raw": sum_tau V_tau)
    loss    = sum_b w_b MSE_b(q, stopgrad(q + V))         grad_q = -2 w_b V / (K L_b N C_b)
    w_b     = L_b / sum_b' L_b'  ("problems", default)  |  1 / n_blocks  ("equal")

T are row-normalised barycentric maps (`SinkhornOutput.barycentric_map`), a convex combination
of targets even after a fixed number of iterations. The self term masks its diagonal
(C_ii = +inf) by default, like the official code. OT always runs in float32 with autocast
disabled, without gradient: the envelope theorem makes the field the gradient direction, so
nothing backpropagates through the solver.

Options (`LossConfig`), each named; the defaults are the official code's choices:
- `iterations`: a recipe of `featsel.ot.recipe`, shared with the diagnostics: "paper" =
  `cross_iters`/`self_iters` (4/2) from zero potentials, tol 0; "converged" = until the
  marginal error is below `tol` (at most `max_iter`).
- `sync_free`: "auto" takes the sync-free route of `featsel.ot.fixed` on GPUs with the paper
  recipe (no host sync; one cost per block shared by the taus); "always"/"never" force it.
- `warm_start`: start each solve from the potentials of the previous step for the same block,
  tau and class (the official code keys its cache by tau only, so blocks with the same number
  of problems start from one another's potentials). Samples are fresh each step, so a warm
  start carries over the potentials' level, not per-point values.
- `self_term`: "masked" (paper) | "unmasked" (the plain Sinkhorn-divergence self term).
- `field`: "normalized" (paper) | "raw".
- `eps_scope`: "block" (paper code: std over all C_qr_c entries of the block) | "problem".
- `block_weight`: "problems" (default): each block's MSE (a mean over its class, location,
  sample and dim entries) weighs its number of locations L_b, so every OT sub-problem counts
  the same, as in the diagnostics' aggregation. "equal": each block weighs the same (the
  paper text: "sums over feature types after averaging each term over its class-location
  entries"); then a one-location block (`input/rms`, `global_mean`, `global_std`) gets L times
  the gradient per sub-problem of a per_loc block with L locations, and on the digits with
  identity features the three scalar blocks drown the 64 per-pixel problems (particles moved
  by the field reach 0.34 class accuracy at per-pixel spread 0.73 vs 0.89 at 0.49 with
  "problems"; real digits: spread 0.46).

Differences from the official code, on purpose: its DDP loss is multiplied by the world size
(so gradient clipping acts on world_size x the gradient); here the loss is the global mean and
DDP's gradient averaging gives the same gradient for any number of ranks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from featsel.ot import FieldConfig, cfg_field

__all__ = ["LossConfig", "SinkhornCFGLoss"]


@dataclass
class LossConfig(FieldConfig):
    """Options of the Sinkhorn-CFG loss: those of the field (`featsel.ot.FieldConfig`: taus,
    iterations, cross_iters, self_iters, tol, max_iter, self_term, field, eps_scope, backend,
    sync_free) and the loss's own, `warm_start` and `block_weight` (module docstring)."""

    warm_start: bool = False
    block_weight: str = "problems"  # "problems" (weight L_b / sum L) | "equal" (1 / n_blocks)

    def validate(self) -> LossConfig:
        super().validate()
        if self.block_weight not in ("problems", "equal"):
            raise ValueError(f"loss.block_weight must be one of ('problems', 'equal'), "
                             f"got {self.block_weight!r}")
        return self


class SinkhornCFGLoss:
    """Sinkhorn-CFG loss over named feature blocks, with warm-start state and logging.

    `loss, info = loss_fn(blocks, w, classes)`:
    blocks: {name: (gen (K, N, L, C) with grad, pos (K, M, L, C), unc (K, U, L, C) or None)},
    w: (K,) guidance alpha - 1, classes: (K,) class ids (warm-start keys).
    loss: () tensor; info: dict of detached () tensors: `lambda` (mean over blocks, classes,
    locations, taus), `lambda/tau=..`, `marginal_error/{cond,uncond,self}` (only with
    `log=True`: they cost one more pass per solve), and the float `time_ot` (seconds; exact
    on GPU only with `sync=True`).
    """

    def __init__(self, cfg: LossConfig, num_classes: int, reduce_mean=None):
        self.cfg = cfg.validate()
        self.num_classes = num_classes
        self.reduce_mean = reduce_mean  # DDP: average of a tensor over ranks
        self.cache: dict[str, Tensor] = {}  # "block|key" -> (T, num_classes, L, N)

    def _init(self, name: str, classes: Tensor) -> dict[str, Tensor] | None:
        if not self.cfg.warm_start:
            return None
        out = {}
        for key in ("f_c", "g_c", "f_u", "g_u", "f_s"):
            t = self.cache.get(f"{name}|{key}")
            if t is not None:
                out[key] = t[:, classes]
        return out or None

    def _store(self, name: str, classes: Tensor, pots: dict[str, Tensor]) -> None:
        for key in ("f_c", "g_c", "f_u", "g_u", "f_s"):
            if key not in pots:
                continue
            v = pots[key]  # (T, K, L, N)
            full = self.cache.get(f"{name}|{key}")
            if full is None or full.shape[2:] != v.shape[2:]:
                full = v.new_zeros(v.shape[0], self.num_classes, *v.shape[2:])
            full[:, classes] = v
            self.cache[f"{name}|{key}"] = full

    def __call__(
        self,
        blocks: dict[str, tuple[Tensor, Tensor, Tensor | None]],
        w: Tensor,
        classes: Tensor,
        sync: bool = False,
        log: bool = True,
    ) -> tuple[Tensor, dict]:
        if not blocks:
            raise ValueError("blocks must hold at least one feature block")
        total = None
        lam_sum, lam_tau, errs, n, n_problems = 0.0, 0.0, {}, 0, 0
        t_ot = 0.0
        for name, (gen, pos, unc) in blocks.items():
            if gen.ndim != 4 or pos.ndim != 4 or pos.shape[::2] != gen.shape[::2]:
                raise ValueError(f"block {name!r}: gen (K, N, L, C) and pos (K, M, L, C) expected,"
                                 f" got {tuple(gen.shape)} and {tuple(pos.shape)}")
            q = gen.permute(0, 2, 1, 3)  # (K, L, N, C)
            p = pos.permute(0, 2, 1, 3)
            r = unc.permute(0, 2, 1, 3) if unc is not None else None
            if sync and q.is_cuda:
                torch.cuda.synchronize(q.device)
            t0 = time.perf_counter()
            V, out = cfg_field(q, p, r, w, self.cfg, self._init(name, classes), self.reduce_mean,
                               errors=log)
            if sync and q.is_cuda:
                torch.cuda.synchronize(q.device)
            t_ot += time.perf_counter() - t0
            if self.cfg.warm_start:
                self._store(name, classes, out)
            qf = q.float()
            block_loss = F.mse_loss(qf, (qf.detach() + V))
            if self.cfg.block_weight == "problems":
                block_loss = block_loss * q.shape[1]  # x L_b; / sum_b L_b below
            total = block_loss if total is None else total + block_loss
            n_problems += q.shape[1]
            lam_sum = lam_sum + out["lam"].mean()
            lam_tau = lam_tau + out["lam"].mean(dim=(1, 2))
            for k, lab in (("err_c", "cond"), ("err_u", "uncond"), ("err_s", "self")):
                if k in out:
                    errs[lab] = errs.get(lab, 0.0) + out[k].float().mean()
            n += 1
        info: dict = {"lambda": (lam_sum / n).detach()}
        for tau, v in zip(self.cfg.taus, (lam_tau / n).detach()):
            info[f"lambda/tau={tau:g}"] = v
        for lab, v in errs.items():
            info[f"marginal_error/{lab}"] = (v / n).detach()
        info["time_ot"] = t_ot
        norm = n_problems if self.cfg.block_weight == "problems" else n
        return total / norm, info

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.cache)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.cache = dict(state)
