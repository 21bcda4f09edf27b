"""`inception`: torch-fidelity's InceptionV3 pool3 features (2048-d), the space of FID.

Latents are decoded to pixels with the generation space first; pixels in [-1, 1] are mapped to
uint8 `round((x + 1) * 127.5)` (grey repeated to 3 channels), which torch-fidelity resizes to
299x299 as TF1 did. Not differentiable (uint8 input): an evaluation featurizer.

Weights: `weights=/path/weights-inception-2015-12-05-6726825d.pth`, else torch-fidelity's file
in the torch hub cache (`$TORCH_HOME/hub/checkpoints/`), else a download, which offline fails at
once with a message naming both.
"""

from __future__ import annotations

import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from featsel.features.base import Featurizer
from featsel.hub import WeightsUnavailableError, is_offline, torch_hub_checkpoint
from featsel.safeload import torch_load


@dataclass
class InceptionConfig:
    """inception: `weights`: local torch-fidelity InceptionV3 weights (.pth state dict)."""

    weights: str | None = None


def _url() -> str:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


class InceptionFeaturizer(Featurizer):
    """u -> [pool3: (B, 2048)]."""

    differentiable = False

    def __init__(self, config: InceptionConfig, net: nn.Module, space: nn.Module | None, in_shape):
        super().__init__(config, ["pool3"])
        self.net = net
        self.use_space(space)
        self.in_shape = tuple(in_shape) if in_shape else None

    def forward(self, u: Tensor) -> list[Tensor]:
        x = self.to_ambient(u)
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"featurizer inception: needs images (B, 1 or 3, H, W), got {tuple(x.shape)}")
        x8 = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if x8.shape[1] == 1:
            x8 = x8.expand(-1, 3, -1, -1)
        (feats,) = self.net(x8.contiguous())
        return [feats.float()]


def _build_net(weights: str | None) -> nn.Module:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = Path(weights).expanduser() if weights else torch_hub_checkpoint(_url())
    if path.is_file():
        # torch-fidelity loads with weights_only=False; check the file is a plain state dict first.
        sd = torch_load(path, "featurizer inception: weights=")
        if not isinstance(sd, dict):
            raise ValueError(f"featurizer inception: {path} is not a state dict")
        return FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
        )
    if weights:
        raise FileNotFoundError(f"featurizer inception: weights file {path} does not exist")
    how = (
        f"Pass 'inception:weights=/path/{path.name}' (torch-fidelity's InceptionV3 weights, "
        f"{_url()}) or place that file at {path}"
    )
    if is_offline():
        raise WeightsUnavailableError(f"featurizer inception: weights not available offline. {how}.")
    try:
        return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    except (urllib.error.URLError, OSError) as err:
        raise WeightsUnavailableError(f"featurizer inception: download failed ({err}). {how}.") from err


def make_inception(cfg: InceptionConfig, *, space=None, in_shape=None, fit_data=None,
                   state_dict=None) -> InceptionFeaturizer:
    if state_dict is not None:
        raise ValueError("featurizer inception is not saved in featsel checkpoints")
    return InceptionFeaturizer(cfg, _build_net(cfg.weights), space, in_shape)
