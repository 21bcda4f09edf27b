"""Blocks from feature maps: shapes, sub-problem counts, input RMS, and the sqrt(C) scaling."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from featsel.features import Block, block_scale, input_rms, normalise_blocks, to_blocks


def test_block_shapes_names_and_counts():
    g = torch.Generator().manual_seed(0)
    spatial = torch.randn(5, 7, 3, 4, generator=g)
    glob = torch.randn(5, 11, generator=g)
    u = torch.randn(5, 2, 6, 6, generator=g)
    blocks = to_blocks([spatial, glob], ["keys.3", "pooled"], u=u)
    assert list(blocks) == [
        "keys.3/per_loc",
        "keys.3/global_mean",
        "keys.3/global_std",
        "pooled/global",
        "input/rms",
    ]
    shapes = {k: (tuple(b.x.shape), b.n_sub, b.dim, b.kind) for k, b in blocks.items()}
    assert shapes == {
        "keys.3/per_loc": ((5, 12, 7), 12, 7, "per_loc"),
        "keys.3/global_mean": ((5, 1, 7), 1, 7, "global_mean"),
        "keys.3/global_std": ((5, 1, 7), 1, 7, "global_std"),
        "pooled/global": ((5, 1, 11), 1, 11, "global"),
        "input/rms": ((5, 1, 2), 1, 2, "input_rms"),
    }
    # per_loc position l = h * W + w holds the C channels of that pixel
    assert torch.equal(blocks["keys.3/per_loc"].x[:, 1 * 4 + 2], spatial[:, :, 1, 2])
    s = spatial.numpy().reshape(5, 7, 12)
    np.testing.assert_allclose(blocks["keys.3/global_mean"].x[:, 0].numpy(), s.mean(2), rtol=1e-5)
    np.testing.assert_allclose(blocks["keys.3/global_std"].x[:, 0].numpy(), s.std(2), rtol=1e-5)
    rms = np.sqrt((u.numpy() ** 2).mean(axis=(2, 3)))
    np.testing.assert_allclose(blocks["input/rms"].x[:, 0].numpy(), rms, rtol=1e-5)
    # vector inputs get no RMS block; a vector map is one global block
    vb = to_blocks([glob], ["identity"], u=glob)
    assert list(vb) == ["identity/global"] and vb["identity/global"].n_sub == 1


def test_block_errors():
    with pytest.raises(ValueError, match="names"):
        to_blocks([torch.zeros(2, 3)], ["a", "b"])
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) or \(B, C\)"):
        to_blocks([torch.zeros(2, 3, 4)], ["a"])
    with pytest.raises(ValueError, match="kinds"):
        to_blocks([torch.zeros(2, 3, 4, 4)], ["a"], kinds=("per_pixel",))
    with pytest.raises(ValueError, match="input_rms"):
        input_rms(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="equal L, C"):
        block_scale(torch.zeros(4, 3, 2), torch.zeros(4, 2, 2))


def _mean_distance_by_hand(gen, *targets):
    """Mean over positions of all gen->pool distances, self-pairs (i, i) excluded (scipy)."""
    pool = np.concatenate([gen, *targets], axis=0)
    n = gen.shape[0]
    total, count = 0.0, 0
    for l in range(gen.shape[1]):
        d = cdist(gen[:, l].astype(np.float64), pool[:, l].astype(np.float64))
        d[np.arange(n), np.arange(n)] = 0.0
        total += d.sum()
        count += n * (pool.shape[0] - 1)
    return total / count


@pytest.mark.parametrize("c", [1, 3, 64])
def test_scaling_gives_mean_distance_sqrt_c(c):
    g = torch.Generator().manual_seed(c)
    gen = torch.randn(16, 9, c, generator=g) * 5 + 2
    pos = torch.randn(12, 9, c, generator=g) * 3
    unc = torch.randn(20, 9, c, generator=g)
    s = block_scale(gen, pos, unc, chunk=4)  # chunking over positions must not matter
    assert s.shape == ()
    by_hand = _mean_distance_by_hand(gen.numpy(), pos.numpy(), unc.numpy())
    np.testing.assert_allclose(s.item(), by_hand / math.sqrt(c), rtol=1e-5)
    gen_n, pos_n, unc_n = normalise_blocks({"b": gen}, {"b": pos}, {"b": unc})
    after = _mean_distance_by_hand(gen_n["b"].numpy(), pos_n["b"].numpy(), unc_n["b"].numpy())
    np.testing.assert_allclose(after, math.sqrt(c), rtol=1e-5)
    # one scale shared by every position of the map
    ratio = gen / gen_n["b"]
    np.testing.assert_allclose(ratio.numpy(), s.item(), rtol=1e-5)


def test_scaling_is_stop_gradient():
    g = torch.Generator().manual_seed(1)
    gen = torch.randn(8, 4, 5, generator=g, requires_grad=True)
    pos = torch.randn(6, 4, 5, generator=g)
    (gen_n, pos_n) = normalise_blocks({"b": Block(gen, "per_loc", "m")}, {"b": pos})
    s = block_scale(gen, pos)
    assert not s.requires_grad
    gen_n["b"].sum().backward()
    # d/dgen (gen / stopgrad(s)) = 1 / s exactly; a differentiated scale would add a term
    torch.testing.assert_close(gen.grad, torch.full_like(gen, 1 / s.item()))
