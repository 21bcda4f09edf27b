"""Featurizers: from a batch in generation space to named feature blocks for OT.

Conventions (see `featsel/spaces.py` and `featsel/data.py`): images are float tensors
`(B, C, H, W)` in [-1, 1]; vector data `(B, D)`; a batch `u` lives in a generation space
(pixels, SD-VAE latents `(B, 4, 32, 32)` scaled by 0.18215, PCA coordinates).

Public API (stable; the diagnostics and the training backend code against it)::

    from featsel.features import (
        Featurizer, Block, create_featurizer, list_featurizers, parse_spec,
        to_blocks, input_rms, block_scale, normalise_blocks, extract_features,
        save_featurizer, load_featurizer,
    )

    feat = create_featurizer("vit:depth=4,tap_every=2,img_size=32,patch_size=2,in_chans=4",
                             space=space, fit_data=u_train)   # fit_data only for 'pca'
    maps = feat(u)                 # list of (B, C, H, W) spatial or (B, C) global maps
    feat.map_names                 # one name per map: ["keys.2", "keys.4", "tokens", "pooled"]
    blocks = feat.blocks(u)        # dict[str, Block]: "keys.2/per_loc", "keys.2/global_mean",
                                   # "keys.2/global_std", ..., "pooled/global", "input/rms"
    blocks["keys.2/per_loc"].x     # (B, L, C): L = H*W independent OT sub-problems in R^C
    blocks["keys.2/per_loc"].n_sub # = L (H*W for per_loc, 1 for global blocks)
    feat.fingerprint()             # str: spec + options + sha256 of the weights (cache keys)

    to_blocks(maps, names, u=None) -> dict[str, Block]   # the same without a featurizer
    s = block_scale(gen, pos, unc) # () tensor, no grad: s / sqrt(C), one scale per block
    gen_n, pos_n, unc_n = normalise_blocks(gen, pos, unc)  # dicts of (B, L, C), each / scale

    from featsel.cache import FeatureCache
    maps = extract_features(feat, u_all, batch_size=256, device="cuda", bf16=True,
                            cache=FeatureCache(), data_id=dataset.data_id())
    # -> list of CPU float32 maps (N, C, H, W) / (N, C), chunked, tqdm progress, cached.
    # (moves `feat` to `device`; bf16 autocast covers the network only.)

Related modules: `featsel.data` (`load_dataset(name, split=, data_root=) -> Dataset(x, labels,
manifest, class_names, ...)`, `Dataset.generation_space()`), `featsel.spaces` (`create_space`,
`PixelSpace`, `VAESpace`, `PCASpace`: `encode`/`decode`/`shape`), `featsel.cache`
(`FeatureCache`), `featsel.latents` (ImageNet -> SD-VAE latent shards).

Spec strings: ``name[:key=value,key=value,...]``; list values use ``+`` (``facets=keys+pooled``);
a path to a featsel featurizer checkpoint (``.pt``) is also a spec. `list_featurizers()` (and
``featsel featurizers``) lists the names and their options: identity, pca, random-projection,
random-vit, vit, dinov2, inception, vae-latent, mlp-vae, scvi-encoder, checkpoint.
"""

from typing import TYPE_CHECKING, Any

from featsel.features.base import Featurizer
from featsel.features.blocks import (
    BLOCK_KINDS,
    Block,
    block_scale,
    input_rms,
    map_blocks,
    normalise_blocks,
    to_blocks,
)
from featsel.features.extract import extract_features
from featsel.features.spec import parse_spec

if TYPE_CHECKING:
    from featsel.features.registry import (
        create_featurizer,
        list_featurizers,
        load_featurizer,
        save_featurizer,
    )

# The registry imports every featurizer implementation, so it is imported on first use of one
# of its names: importing an implementation module (featsel.features.cnn, ...) does not pull in
# the registry (the implementations never import it; tests/test_features_registry.py checks).
_FROM_REGISTRY = ("create_featurizer", "list_featurizers", "load_featurizer", "save_featurizer")


def __getattr__(name: str) -> Any:
    if name in _FROM_REGISTRY:
        from featsel.features import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BLOCK_KINDS",
    "Block",
    "Featurizer",
    "block_scale",
    "create_featurizer",
    "extract_features",
    "input_rms",
    "list_featurizers",
    "load_featurizer",
    "map_blocks",
    "normalise_blocks",
    "parse_spec",
    "save_featurizer",
    "to_blocks",
]
