"""The featurizer interface: a frozen network from generation space to a list of feature maps.

`Featurizer.forward(u)`: u `(B, *space.shape)` -> list of maps, each `(B, C, H, W)` (spatial)
or `(B, C)` (global), named by `map_names`. Parameters are frozen (`requires_grad=False`,
eval mode) but the forward pass stays differentiable in `u` where the network allows it
(`differentiable`), so the training loss can backpropagate into the generator; `featsel train`
refuses a featurizer whose class sets `differentiable = False` (the noise/constant controls,
inception).

A featurizer that needs the data's ambient form (pixels, genes) whatever the generation space
is calls `use_space(space)` and feeds `to_ambient(u)` to its network: the space says whether and
how u is decoded (`GenerationSpace.ambient_decoder`), the featurizer never looks at which space
it is.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, fields
from typing import Any

import torch
from torch import Tensor, nn

from featsel.features.blocks import BLOCK_KINDS, Block, to_blocks

FEATURE_FORMAT_VERSION = 1  # bump when extraction semantics change (invalidates caches)


class Featurizer(nn.Module):
    """Base class. Subclasses set `name`, fill `config` (a dataclass) and `map_names`, and
    implement `forward(u) -> list[Tensor]`."""

    name: str = ""
    # False: forward(u) carries no gradient back to u (a hash, a uint8 cast), so its features
    # cannot teach a generator: `featsel train` refuses it (read from the class, before building)
    differentiable: bool = True

    def __init__(self, config: Any, map_names: list[str]):
        super().__init__()
        self.config = config
        self.map_names = list(map_names)
        self.pixel_space: nn.Module | None = None  # see use_space

    def use_space(self, space: Any | None) -> None:
        """Decode inputs through the generation space `space` before the network (`to_ambient`).

        Keeps `space.ambient_decoder` (None for the ambient space itself, whose decode is the
        identity) as `pixel_space`: that attribute name is what `save_featurizer` leaves out of
        checkpoints (the caller's space, e.g. a VAE, is not part of the featurizer's weights)
        and what `generation.evaluate` switches off to feed real ambient samples."""
        self.pixel_space = space.ambient_decoder if space is not None else None

    def to_ambient(self, u: Tensor) -> Tensor:
        """u: (B, *space.shape) -> (B, *ambient_shape) decoded through the space given to
        `use_space`, differentiably (gradients reach u); u itself when there is nothing to
        decode."""
        return u if self.pixel_space is None else self.pixel_space.decode(u)

    @property
    def spec(self) -> str:
        """Canonical spec: `name:key=value,...` with every option (defaults filled in)."""
        opts = []
        for f in fields(self.config):
            v = getattr(self.config, f.name)
            if v is None:
                continue
            if isinstance(v, (tuple, list)):
                v = "+".join(str(e) for e in v)
            elif isinstance(v, bool):
                v = str(v).lower()
            opts.append(f"{f.name}={v}")
        return f"{self.name}:{','.join(opts)}" if opts else self.name

    def forward(self, u: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        """u: (B, ...) -> list of (B, C, H, W) / (B, C) maps."""
        raise NotImplementedError

    def blocks(
        self, u: Tensor, *, input_rms: bool = True, kinds: tuple[str, ...] = BLOCK_KINDS
    ) -> dict[str, Block]:
        """u: (B, ...) -> named blocks (B, L, C) (see `featsel.features.blocks`)."""
        return to_blocks(self(u), self.map_names, u if input_rms else None, kinds)

    def weights_hash(self) -> str:
        """sha256 over all parameters and buffers (names, shapes, dtypes and bytes)."""
        h = hashlib.sha256()
        for k, v in sorted(self.state_dict().items()):
            t = v.detach().cpu().contiguous()
            h.update(f"{k}|{tuple(t.shape)}|{t.dtype}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()

    def fingerprint(self) -> str:
        """Identity for caches: format version, class, spec, map names and weights hash."""
        text = (
            f"v{FEATURE_FORMAT_VERSION}|{type(self).__name__}|{self.spec}|"
            f"{','.join(self.map_names)}|{self.weights_hash()}"
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def info(self) -> dict[str, Any]:
        """JSON-able description."""
        return {"name": self.name, "spec": self.spec, "maps": self.map_names, **asdict(self.config)}

    def extra_repr(self) -> str:
        return self.spec
