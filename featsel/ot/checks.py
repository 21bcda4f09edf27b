"""Input validation for the OT engine: every error names the argument and what was expected."""

from __future__ import annotations

import math

import torch
from torch import Tensor

_FLOATS = (torch.float32, torch.float64)


def as_points(name: str, x: Tensor, check_finite: bool = True) -> Tensor:
    """Check a point cloud `x: (..., N, D)` and return it detached, in float32 or float64.

    Half precision and bfloat16 are promoted to float32: OT never runs below float32.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (..., N, D), got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape (..., N, D), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[-2] == 0:
        raise ValueError(f"{name} is empty: it has 0 points (shape {tuple(x.shape)})")
    if x.shape[-1] == 0:
        raise ValueError(f"{name} has dimension D = 0 (shape {tuple(x.shape)})")
    if x.dtype not in _FLOATS:
        x = x.float()
    x = x.detach()
    # one read pass without a temporary (isfinite(x).all() materialises a bool copy of x);
    # amin/amax propagate NaN and are infinite when any entry is
    if check_finite and not bool(torch.isfinite(torch.stack(torch.aminmax(x))).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    return x


def check_pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Check two point clouds against each other: same batch shape, same D, same dtype/device."""
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"x and y must have the same dimension D, got x: {tuple(x.shape)}, y: {tuple(y.shape)}"
        )
    if x.shape[:-2] != y.shape[:-2]:
        raise ValueError(
            "x and y must have the same leading batch shape, got "
            f"x: {tuple(x.shape)}, y: {tuple(y.shape)}"
        )
    if x.device != y.device:
        raise ValueError(f"x and y must be on the same device, got {x.device} and {y.device}")
    dtype = torch.promote_types(x.dtype, y.dtype)
    return x.to(dtype), y.to(dtype)


def as_weights(name: str, w: Tensor | None, like: Tensor, check: bool = True) -> Tensor:
    """Return weights `(..., N)` for the points `like: (..., N, D)`; uniform when `w` is None.

    Weights must be non-negative, finite and sum to 1 per problem (relative tolerance 1e-4 in
    float32, 1e-10 in float64). check=False skips these value checks (each is a device read,
    a host sync on a GPU): the sync-free route of `featsel.ot.fixed`.
    """
    shape = like.shape[:-1]
    if w is None:
        return torch.full(shape, 1.0 / shape[-1], dtype=like.dtype, device=like.device)
    if not isinstance(w, Tensor):
        w = torch.as_tensor(w)
    w = w.detach().to(device=like.device, dtype=like.dtype)
    if w.shape != shape:
        try:
            w = w.expand(shape)
        except RuntimeError:
            raise ValueError(
                f"{name} must have shape {tuple(shape)} (one weight per point), got {tuple(w.shape)}"
            ) from None
    if not check:
        return w
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    if bool((w < 0).any()):
        raise ValueError(f"{name} must be non-negative")
    tol = 1e-4 if like.dtype == torch.float32 else 1e-10
    if bool(((w.sum(-1) - 1).abs() > tol).any()):
        raise ValueError(f"{name} must sum to 1 over the points of each problem")
    return w


def as_eps(eps: float | Tensor, batch_shape: torch.Size, like: Tensor, check: bool = True) -> Tensor:
    """Return eps as a tensor of shape `batch_shape`; a float or any broadcastable tensor is taken.
    A number is checked on the host; a tensor with one device read (a GPU sync), skipped when
    check=False."""
    if isinstance(eps, (int, float)) and not isinstance(eps, bool):
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError("eps must be finite and > 0")
        return torch.full(batch_shape, float(eps), dtype=like.dtype, device=like.device)
    e = torch.as_tensor(eps, dtype=like.dtype, device=like.device).detach()
    try:
        e = e.expand(batch_shape).contiguous()
    except RuntimeError:
        raise ValueError(
            f"eps must be a number or a tensor broadcastable to the batch shape {tuple(batch_shape)}, "
            f"got shape {tuple(e.shape)}"
        ) from None
    if check and bool((~torch.isfinite(e) | (e <= 0)).any()):
        raise ValueError("eps must be finite and > 0")
    return e


def check_iterations(max_iter: int, tol: float) -> None:
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not (tol >= 0):
        raise ValueError(f"tol must be >= 0 (0 runs exactly max_iter iterations), got {tol!r}")
