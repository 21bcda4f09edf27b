"""Precompute SD-VAE latents of an ImageFolder into shards (the `imagenet256` data set).

Each image is resized (short side to `image_size`, bicubic, antialiased) and centre-cropped to
`image_size` x `image_size`, mapped to [-1, 1] and encoded as a posterior sample times the
latent scaling (0.18215 for the SD-VAE); with `flip`, the horizontally flipped image is encoded
too. Shard i holds samples [i * shard_size, (i + 1) * shard_size) of the ImageFolder's sorted
order: `shard-00000.pt` = {"latents": (n, 4, 32, 32), "flipped": (n, 4, 32, 32) or absent,
"labels": (n,), "indices": (n,)}, written atomically; the posterior noise of shard i is seeded
by (seed, i). Resumable: existing shards are skipped. Distributable: under `torchrun`, rank r of
W processes shards r, r + W, ... on GPU `LOCAL_RANK`; no process group is needed.

    python -m featsel.latents /data/imagenet/train $FEATSEL_DATA_DIR/imagenet256-latents/train
    torchrun --nproc_per_node 8 -m featsel.latents IMAGE_ROOT OUT_DIR --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from featsel.rundir import atomic_save, atomic_write_json
from featsel.safeload import torch_load
from featsel.spaces import SD_VAE_NAME, VAESpace

INDEX = "index.json"


@dataclass
class LatentPrecomputeConfig:
    """Options of `precompute_latents` (one place for each default)."""

    image_root: str
    out_dir: str
    vae: str = SD_VAE_NAME  # hub name or local diffusers directory
    image_size: int = 256
    shard_size: int = 4096
    batch_size: int = 64
    flip: bool = True
    seed: int = 0
    dtype: str = "float16"  # storage dtype of the latents: float16 | float32
    num_workers: int = 4


def image_transform(image_size: int):
    """PIL image -> (3, S, S) float tensor in [-1, 1]: resize short side, centre crop."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Lambda(lambda im: im.convert("RGB")),
            T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.CenterCrop(image_size),
            T.ToTensor(),
            T.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
        ]
    )


def _dist_env() -> tuple[int, int, int]:
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def _save_atomic(obj: Any, path: Path) -> None:
    atomic_save(path, lambda tmp: torch.save(obj, tmp))


def precompute_latents(
    cfg: LatentPrecomputeConfig,
    *,
    space: VAESpace | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Encode `cfg.image_root` (an ImageFolder) into shards under `cfg.out_dir`.

    space: a ready `VAESpace` (default: `VAESpace.from_pretrained(cfg.vae)`);
    rank/world_size: default from the torchrun environment (RANK, WORLD_SIZE).
    Returns {"n", "n_shards", "written", "skipped"} for this rank.
    """
    from torch.utils.data import DataLoader, Subset
    from torchvision.datasets import ImageFolder

    env_rank, env_world, local_rank = _dist_env()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    if cfg.dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be float16 or float32, got {cfg.dtype!r}")
    root = Path(cfg.image_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image_root {root} is not a directory (expected an ImageFolder)")
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    img_shape = (3, cfg.image_size, cfg.image_size)
    if space is None:
        space = VAESpace.from_pretrained(cfg.vae, image_shape=img_shape)
    if space.ambient_shape != img_shape:
        raise ValueError(f"space expects images {space.ambient_shape}, config gives {img_shape}")
    space = space.to(device)
    data = ImageFolder(str(root), transform=image_transform(cfg.image_size))
    n = len(data)
    n_shards = math.ceil(n / cfg.shard_size)
    out = Path(cfg.out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    index = {
        "n": n,
        "n_shards": n_shards,
        "classes": list(data.classes),
        "shape": list(space.shape),
        "vae": space.spec,
        "scaling": space.scaling,
        **{k: v for k, v in asdict(cfg).items() if k not in ("out_dir", "batch_size", "num_workers", "vae")},
    }
    index_path = out / INDEX
    if index_path.is_file():
        old = json.loads(index_path.read_text())
        diff = {k for k in index if k != "image_root" and old.get(k) != index[k]}
        if diff:
            raise ValueError(
                f"{out} holds shards made with other settings ({sorted(diff)} differ); "
                "use a new out_dir or remove the old one"
            )
    elif rank == 0:
        atomic_write_json(index_path, index)
    dtype = getattr(torch, cfg.dtype)
    mine = list(range(rank, n_shards, world_size))
    written = skipped = 0
    bar = tqdm(mine, desc=f"latents rank {rank}", disable=progress is False)
    for i in bar:
        path = out / f"shard-{i:05d}.pt"
        if path.is_file():
            skipped += 1
            continue
        idx = list(range(i * cfg.shard_size, min(n, (i + 1) * cfg.shard_size)))
        loader = DataLoader(
            Subset(data, idx), batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers
        )
        gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + i)
        lat, flp, lab = [], [], []
        with torch.no_grad():
            for x, y in loader:
                x = x.to(device)
                lat.append(space.encode(x, generator=gen).to(dtype).cpu())
                if cfg.flip:
                    flp.append(space.encode(x.flip(-1), generator=gen).to(dtype).cpu())
                lab.append(y)
        shard = {
            "latents": torch.cat(lat),
            "labels": torch.cat(lab).long(),
            "indices": torch.tensor(idx, dtype=torch.long),
        }
        if cfg.flip:
            shard["flipped"] = torch.cat(flp)
        _save_atomic(shard, path)
        written += 1
    return {"n": n, "n_shards": n_shards, "written": written, "skipped": skipped}


def load_latent_shards(
    directory: str | os.PathLike, *, flips: bool = True
) -> tuple[Tensor, Tensor, list[str]]:
    """Read all shards -> (latents (N', 4, h, w) float32, labels (N',), class names);
    N' = 2N with `flips` (flipped copies after the originals) when they were computed."""
    d = Path(directory).expanduser()
    index_path = d / INDEX
    if not index_path.is_file():
        raise FileNotFoundError(f"{index_path} not found: run `python -m featsel.latents` first")
    index = json.loads(index_path.read_text())
    paths = [d / f"shard-{i:05d}.pt" for i in range(index["n_shards"])]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{d}: {len(missing)} of {len(paths)} shards missing ({missing[:3]}...): the "
            "precompute is incomplete; rerun it (it resumes)"
        )
    lat, flp, lab = [], [], []
    for p in paths:
        s = torch_load(p, "latent shard")
        lat.append(s["latents"])
        lab.append(s["labels"])
        if flips and "flipped" in s:
            flp.append(s["flipped"])
    x = torch.cat(lat + flp).float()
    y = torch.cat(lab * (2 if flp else 1))
    return x, y, list(index["classes"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m featsel.latents", description=__doc__.splitlines()[0])
    p.add_argument("image_root")
    p.add_argument("out_dir")
    defaults = LatentPrecomputeConfig("", "")
    p.add_argument("--vae", default=defaults.vae, help="hub name or local diffusers directory")
    p.add_argument("--image-size", type=int, default=defaults.image_size)
    p.add_argument("--shard-size", type=int, default=defaults.shard_size)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--no-flip", action="store_true", help="skip the flipped copies")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--dtype", default=defaults.dtype, choices=["float16", "float32"])
    p.add_argument("--num-workers", type=int, default=defaults.num_workers)
    a = p.parse_args(argv)
    cfg = LatentPrecomputeConfig(
        a.image_root,
        a.out_dir,
        vae=a.vae,
        image_size=a.image_size,
        shard_size=a.shard_size,
        batch_size=a.batch_size,
        flip=not a.no_flip,
        seed=a.seed,
        dtype=a.dtype,
        num_workers=a.num_workers,
    )
    print(json.dumps(precompute_latents(cfg)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
