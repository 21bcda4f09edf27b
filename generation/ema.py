"""Multi-decay exponential moving averages of a model's parameters.

For each decay d: `ema <- d * ema + (1 - d) * theta`, applied to every parameter (buffers are
copied), called once AFTER each optimiser step (the official code updates inside the forward,
i.e. before the step, so its EMA lags one step; this one follows the paper's text). Uses
`torch._foreach_lerp_` (one fused kernel per decay). Shadows hold float32 copies.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

__all__ = ["MultiEMA"]


class MultiEMA:
    """EMA shadows of `model` for several decays; `shadow(d)` is an nn.Module in eval mode."""

    def __init__(self, model: nn.Module, decays: tuple[float, ...] | list[float]):
        decays = tuple(float(d) for d in decays)
        if not decays or not all(0.0 < d < 1.0 for d in decays) or len(set(decays)) != len(decays):
            raise ValueError(f"decays must be distinct numbers in (0, 1), got {decays}")
        self.decays = decays
        self._shadows: dict[float, nn.Module] = {}
        for d in decays:
            m = copy.deepcopy(_unwrap(model)).float().eval()
            m.requires_grad_(False)
            self._shadows[d] = m

    def shadow(self, decay: float | None = None) -> nn.Module:
        """The EMA model for `decay` (default: the first decay)."""
        d = self.decays[0] if not decay else float(decay)
        if d not in self._shadows:
            raise ValueError(f"EMA decay {d} not tracked; available: {list(self.decays)}")
        return self._shadows[d]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step of every shadow towards `model`'s current parameters."""
        src = [p.detach().float() for p in _unwrap(model).parameters()]
        src_buf = list(_unwrap(model).buffers())
        for d, m in self._shadows.items():
            torch._foreach_lerp_(list(m.parameters()), src, 1.0 - d)
            for b, s in zip(m.buffers(), src_buf):
                b.copy_(s)

    def to(self, device: torch.device | str) -> MultiEMA:
        for m in self._shadows.values():
            m.to(device)
        return self

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {str(d): m.state_dict() for d, m in self._shadows.items()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        have = {str(d) for d in self.decays}
        if set(state) != have:
            raise ValueError(f"EMA state holds decays {sorted(state)}, expected {sorted(have)}")
        for d, m in self._shadows.items():
            m.load_state_dict(state[str(d)])


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
