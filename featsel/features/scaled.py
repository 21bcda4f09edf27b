"""The frozen features of one training step, scaled per block: what the Sinkhorn-CFG field
is computed on (`generation.train` each step, and the particle-flow diagnostic
`featsel.diagnostics.flow`, which follows the same field without a generator)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from featsel.features.blocks import block_scale

__all__ = ["REAL_CHUNK", "featurize_blocks"]

REAL_CHUNK = 256  # real samples per featurizer call (no gradient) in a training step


def featurize_blocks(
    featurizer: nn.Module,
    x_gen: Tensor,
    x_pos: Tensor,
    x_unc: Tensor | None,
    reduce_mean=None,
) -> dict[str, tuple[Tensor, Tensor, Tensor | None]]:
    """Frozen features of one step, scaled per block.

    x_gen: (K, N, *S) with grad; x_pos: (K, M, *S); x_unc: (K, U, *S) or None.
    Returns {block: (gen (K, N, L, C), pos (K, M, L, C), unc (K, U, L, C) | None)}, each block
    divided by `featsel.features.block_scale` (s / sqrt(C), the mean generated-to-pool distance
    within each class and location; no gradient), averaged over DDP ranks by `reduce_mean`.
    """
    K, N = x_gen.shape[:2]
    M, U = x_pos.shape[1], (x_unc.shape[1] if x_unc is not None else 0)
    gen_blocks = featurizer.blocks(x_gen.flatten(0, 1))
    with torch.no_grad():
        real = x_pos.flatten(0, 1) if x_unc is None else torch.cat(
            [x_pos.flatten(0, 1), x_unc.flatten(0, 1)])
        # in chunks: blocks are per sample, and a ViT's attention over thousands of real
        # samples at once allocated gigabytes per layer (page faults: the system time of a
        # CPU step exceeded its user time)
        parts = [featurizer.blocks(c) for c in real.split(REAL_CHUNK)]
        real_x = {k: torch.cat([p[k].x for p in parts]) if len(parts) > 1 else parts[0][k].x
                  for k in parts[0]}
    out = {}
    for name, gb in gen_blocks.items():
        g = gb.x.float().unflatten(0, (K, N))  # (K, N, L, C)
        rb = real_x[name].float()
        p = rb[: K * M].unflatten(0, (K, M))
        r = rb[K * M :].unflatten(0, (K, U)) if U else None
        L, C = g.shape[2:]
        # classes become extra "positions": (N, K*L, C), so the distances stay within a class
        targets = [p.transpose(0, 1).reshape(M, K * L, C)]
        if r is not None:
            targets.append(r.transpose(0, 1).reshape(U, K * L, C))
        s = block_scale(g.detach().transpose(0, 1).reshape(N, K * L, C), *targets)
        if reduce_mean is not None:
            s = reduce_mean(s)
        out[name] = (g / s, p / s, r / s if r is not None else None)
    return out
