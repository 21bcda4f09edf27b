"""Offline-aware access to model weights (Hugging Face hub, torch hub cache, local files).

Nothing may be downloaded at run time on an offline machine, and a hub call that cannot succeed
should fail at once, not after ~30 s of retries. Before any loader touches the network, the
functions here check the local caches; when the process is marked offline
(`HF_HUB_OFFLINE=1`, `TRANSFORMERS_OFFLINE=1` or `FEATSEL_OFFLINE=1`) and the files are not
there, they raise `WeightsUnavailableError` naming the file or setting that would provide them.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


class WeightsUnavailableError(FileNotFoundError):
    """Model weights are neither on disk nor downloadable (offline)."""


def is_offline() -> bool:
    """True when the environment forbids network access to model hubs (read at call time)."""
    return any(
        os.environ.get(v, "").strip().lower() in _TRUE
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "FEATSEL_OFFLINE")
    )


def hf_file_cached(repo_id: str, filename: str, subfolder: str | None = None) -> bool:
    """Whether `filename` of the Hugging Face repo `repo_id` is in the local hub cache."""
    from huggingface_hub import try_to_load_from_cache

    if subfolder:
        filename = f"{subfolder}/{filename}"
    found = try_to_load_from_cache(repo_id, filename)
    return isinstance(found, str) and Path(found).is_file()


def require_hf_files(
    repo_id: str, filenames: list[str], *, what: str, how: str, subfolder: str | None = None
) -> None:
    """Fail at once when offline and none of `filenames` of `repo_id` is cached.

    `what` names the model ("SD-VAE 'stabilityai/sd-vae-ft-mse'"), `how` says which option or
    setting provides the weights instead (e.g. "pass vae:path=/dir/with/config.json").
    """
    if not is_offline():
        return
    if any(hf_file_cached(repo_id, f, subfolder) for f in filenames):
        return
    raise WeightsUnavailableError(
        f"{what}: weights not available offline (HF_HUB_OFFLINE is set and the Hugging Face "
        f"cache {_hf_cache_dir()} has no {repo_id}/{' or '.join(filenames)}). {how}, or unset "
        f"HF_HUB_OFFLINE on a machine with network to download them into the cache."
    )


def torch_hub_checkpoint(url: str) -> Path:
    """Where `torch.hub.load_state_dict_from_url(url)` caches its file."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover - very old huggingface_hub
        return "~/.cache/huggingface/hub"
