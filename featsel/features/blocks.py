"""Feature maps -> named OT blocks, and the per-block scale normalisation.

A feature map is `(B, C, H, W)` (spatial) or `(B, C)` (global). Blocks are `(B, L, C)`: L
independent OT sub-problems in R^C, each matching the B samples at one position.

From a spatial map `m` named `name`:
- `name/per_loc`:     `m` flattened to `(B, H*W, C)` (L = H*W sub-problems);
- `name/global_mean`: `mean_{h,w} m` as `(B, 1, C)`;
- `name/global_std`:  `std_{h,w} m` as `(B, 1, C)` (population std, correction 0).
From a global map: `name/global` `(B, 1, C)` (vector data keep the whole flattened vector here).
From the input `u: (B, C, H, W)`: `input/rms` = `sqrt(mean_{h,w} u^2)` as `(B, 1, C)`
(the paper's "input-norm" feature; vector inputs get none, since the per-channel RMS of a
vector is just `|u_c|`).

Scaling (paper Appendix C, "Each feature type is normalized independently"): for a block with
generated features q (N_gen), positives p, unconditional r, the block is divided by
`s / sqrt(C)`, where `s` is the mean Euclidean distance from each generated point to every point
of the pool `[q, p, r]` at the same position, averaged over all L positions (one scale shared by
all positions of a map) and computed without gradient. The N_gen zero self-distances
`||q_i - q_i||` are left out of the mean. After scaling, that mean distance is exactly sqrt(C).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

BLOCK_KINDS = ("per_loc", "global_mean", "global_std")


@dataclass
class Block:
    """One named feature block. x: (B, L, C); kind in per_loc, global_mean, global_std,
    global, input_rms; `n_sub` = L independent OT sub-problems (H*W for per_loc, else 1)."""

    x: Tensor
    kind: str
    map_name: str

    @property
    def n_sub(self) -> int:
        return int(self.x.shape[1])

    @property
    def dim(self) -> int:
        return int(self.x.shape[2])


def input_rms(u: Tensor) -> Tensor:
    """u: (B, C, H, W) -> (B, 1, C), the per-channel spatial RMS sqrt(mean_{h,w} u^2)."""
    if u.ndim != 4:
        raise ValueError(f"input_rms: u must be (B, C, H, W), got shape {tuple(u.shape)}")
    u = u.to(torch.promote_types(u.dtype, torch.float32))
    return u.pow(2).mean(dim=(2, 3)).sqrt().unsqueeze(1)


def map_blocks(m: Tensor, name: str, kinds: Sequence[str] = BLOCK_KINDS) -> dict[str, Block]:
    """One map -> its blocks. m: (B, C, H, W) -> per_loc (B, HW, C), global_mean/std (B, 1, C);
    m: (B, C) -> global (B, 1, C)."""
    if m.ndim == 2:
        return {f"{name}/global": Block(m.unsqueeze(1), "global", name)}
    if m.ndim != 4:
        raise ValueError(f"map {name!r} must be (B, C, H, W) or (B, C), got {tuple(m.shape)}")
    bad = set(kinds) - set(BLOCK_KINDS)
    if bad:
        raise ValueError(f"kinds must be among {BLOCK_KINDS}, got {sorted(bad)}")
    out: dict[str, Block] = {}
    flat = m.flatten(2)  # (B, C, HW)
    for kind in kinds:
        if kind == "per_loc":
            x = flat.transpose(1, 2)
        elif kind == "global_mean":
            x = flat.mean(dim=2).unsqueeze(1)
        else:
            x = flat.std(dim=2, correction=0).unsqueeze(1)
        out[f"{name}/{kind}"] = Block(x, kind, name)
    return out


def to_blocks(
    maps: Sequence[Tensor],
    names: Sequence[str] | None = None,
    u: Tensor | None = None,
    kinds: Sequence[str] = BLOCK_KINDS,
) -> dict[str, Block]:
    """maps: list of (B, C, H, W) / (B, C); names: one per map (default map0, map1, ...);
    u: (B, C, H, W) generation-space input, adds `input/rms` (B, 1, C) when given and spatial."""
    names = list(names) if names is not None else [f"map{i}" for i in range(len(maps))]
    if len(names) != len(maps):
        raise ValueError(f"names: expected {len(maps)} names, got {len(names)}")
    blocks: dict[str, Block] = {}
    for m, n in zip(maps, names):
        blocks.update(map_blocks(m, n, kinds))
    if u is not None and u.ndim == 4:
        blocks["input/rms"] = Block(input_rms(u), "input_rms", "input")
    return blocks


def _as_tensor(b: Block | Tensor) -> Tensor:
    return b.x if isinstance(b, Block) else b


@torch.no_grad()
def block_scale(gen: Block | Tensor, *targets: Block | Tensor, chunk: int = 64) -> Tensor:
    """The divisor `s / sqrt(C)` of one block (a () tensor, no gradient).

    gen: (N, L, C) generated features; targets: (M_k, L, C) each (positives, unconditional).
    s = mean over positions l and pairs (i, j), j != i when j is generated, of
    ||gen[i, l] - pool[j, l]||, pool = cat(gen, *targets). Computed in float32 or better,
    `chunk` positions at a time to bound memory to chunk * N * sum(M) floats.
    """
    g = _as_tensor(gen)
    ts = [_as_tensor(t) for t in targets]
    if g.ndim != 3 or any(t.ndim != 3 or t.shape[1:] != g.shape[1:] for t in ts):
        raise ValueError(
            f"block_scale: gen and targets must be (N, L, C) with equal L, C; got "
            f"{tuple(g.shape)} and {[tuple(t.shape) for t in ts]}"
        )
    dtype = torch.promote_types(g.dtype, torch.float32)
    pool = torch.cat([g, *ts], dim=0).to(dtype)
    g = g.to(dtype)
    n, length, c = g.shape
    total = torch.zeros((), dtype=dtype, device=g.device)
    eye = torch.eye(n, dtype=torch.bool, device=g.device)
    for lo in range(0, length, chunk):
        gl = g[:, lo : lo + chunk].transpose(0, 1)  # (l, N, C)
        pl = pool[:, lo : lo + chunk].transpose(0, 1)  # (l, N + M, C)
        d = torch.cdist(gl, pl)  # (l, N, N + M)
        d[:, :, :n].masked_fill_(eye, 0.0)  # exact zeros on the self-diagonal
        total = total + d.sum()
    count = length * n * (pool.shape[0] - 1)
    s = total / max(count, 1)
    return (s / math.sqrt(c)).clamp_min(torch.finfo(dtype).tiny)


def normalise_blocks(
    gen: Mapping[str, Block | Tensor], *targets: Mapping[str, Block | Tensor]
) -> tuple[dict[str, Tensor], ...]:
    """Divide every block of gen and of each target dict by that block's `block_scale`.

    gen[k]: (N, L, C); targets[j][k]: (M_j, L, C). Returns (gen_scaled, *targets_scaled), dicts
    of (., L, C) tensors. The scale carries no gradient (stop-gradient); gradients flow
    through the features themselves.
    """
    outs: list[dict[str, Tensor]] = [{} for _ in range(1 + len(targets))]
    for k, gb in gen.items():
        missing = [j for j, t in enumerate(targets) if k not in t]
        if missing:
            raise ValueError(f"normalise_blocks: block {k!r} missing from targets {missing}")
        tb = [_as_tensor(t[k]) for t in targets]
        s = block_scale(gb, *tb)
        outs[0][k] = _as_tensor(gb) / s
        for j, t in enumerate(tb):
            outs[j + 1][k] = t / s
    return tuple(outs)
