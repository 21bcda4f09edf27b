"""`featsel pretrain scvi`: train scvi-tools' SCVI on a vector data set (cells x genes) and
write its encoder's latent mean q(z|x) as a featsel featurizer (`scvi-encoder`), the coupling
space of the paper's single-cell runs. Needs the optional extra (`pip install 'featsel[scvi]'`,
scvi-tools >= 1.2); without it, the MLP VAE of `featsel pretrain vae` is the stand-in.

What scVI is fed. featsel's vector data sets hold log-normalised expression x = log1p(counts
normalised per cell) (pbmc68k: scanpy's `raw.X`, the only matrix it ships; h5ad sets: counts
normalised to 1e4 and log1p'd), not raw counts. scVI has no Gaussian likelihood on log data of
its own (its `gene_likelihood="normal"` models x with mean sum(x) * softmax(decoder(z)), a
compositional normal), so by default (`gene_likelihood=zinb`, also `nb`, `poisson`) it is
given the back-transformed pseudo-counts c = expm1(x): non-integer normalised counts, which
scVI's negative-binomial likelihoods evaluate through lgamma (it warns that they are not
integers). Its encoder log1p's its input (`log_variational`), so the encoder sees log1p(c) = x,
exactly featsel's ambient vectors; the library size it conditions on is that of the normalised
counts (the raw depth is lost in x). With `gene_likelihood=normal` it is given x itself and
`log_variational=False`: again the encoder's input is x. No batch covariate is used.

Training: scvi-tools' own trainer (lightning), all cells (`train_size=1`), seeded
(`scvi.settings.seed`), `epochs` (default scvi-tools' heuristic: 400 up to 20,000 cells),
Adam at `lr`, scVI's default KL warm-up (400 epochs). Then the encoder (Linear -> BatchNorm ->
ReLU, x depth, -> mean head) is copied into featsel's plain torch `ScviEncoder`, and the summary
reports the largest difference between its output and `get_latent_representation(
give_mean=True)` on the training cells (`latent_max_abs_diff`: 0.0 on pbmc68k, where
log1p(expm1(x)) == x in float32).

Run folder `out`: `featurizer.pt` (loads without scvi-tools: `create_featurizer(path,
space=space)`; in a generation space other than the ambient one it decodes to genes first),
`scvi_model/` (scvi-tools' `model.save`: `scvi.model.SCVI.load(dir, adata)`), `config.json`,
`state.pt` (epochs done) and `lightning.ckpt` (lightning's checkpoint, every `save_every` epochs
and at the end). `resume=True` continues from `lightning.ckpt`: weights, optimiser, epoch (so the
KL warm-up too) and the torch/numpy RNGs (data shuffling, dropout), so that 3 epochs then 3
more give the weights of 6 in one go (tested); `epochs` may be raised on resume.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from featsel.features import save_featurizer
from featsel.features.scvi_encoder import ScviEncoder, ScviEncoderConfig, ScviEncoderFeaturizer
from generation.pretrain.common import check_positive, prepare_out, write_state

ARCH_KEYS = ("data", "split", "n_max", "latent_dim", "hidden", "depth", "dropout",
             "gene_likelihood", "batch_size", "lr", "seed")
LIKELIHOODS = ("zinb", "nb", "poisson", "normal")


class MissingExtraError(RuntimeError):
    """scvi-tools is not installed (a RuntimeError: the CLI prints it as one line)."""


def require_scvi(data: str = "DATA"):
    """`import scvi`, or MissingExtraError naming the extra and the MLP VAE fallback command."""
    try:
        import scvi
    except ImportError as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise MissingExtraError(
            f"pretrain scvi needs scvi-tools ({why}): pip install 'featsel[scvi]' (or "
            f"pip install -e '.[scvi]'); without it, the MLP VAE stands in: "
            f"featsel pretrain vae --data {data} --out DIR") from None
    return scvi


@dataclass
class ScviConfig:
    """Options of `train_scvi` (defaults: scvi-tools' SCVI)."""

    data: str = "pbmc68k"
    split: str = "train"
    data_root: str | None = None
    n_max: int | None = None  # use the first n_max cells only
    out: str = "runs/scvi"
    epochs: int | None = None  # None: scvi-tools' heuristic, min(400, round(400 * 20000 / N))
    latent_dim: int = 10  # n_latent
    hidden: int = 128  # n_hidden
    depth: int = 1  # n_layers
    dropout: float = 0.1  # dropout_rate
    gene_likelihood: str = "zinb"  # zinb | nb | poisson (on expm1(x)) | normal (on x)
    batch_size: int = 128
    lr: float = 1e-3
    save_every: int = 50  # epochs between lightning checkpoints (for resume)
    seed: int = 0
    device: str = "cpu"


def default_epochs(n_cells: int) -> int:
    """scvi-tools' `get_max_epochs_heuristic` (400 up to 20,000 cells, then fewer)."""
    return max(min(round(20_000 / n_cells * 400), 400), 1)


def scvi_input(x: Tensor, gene_likelihood: str) -> Tensor:
    """What scVI is given for log-normalised x: (N, G): expm1(x) for the count likelihoods,
    x for `normal` (see the module docstring). Checks that scVI can use it."""
    if gene_likelihood not in LIKELIHOODS:
        raise ValueError(f"gene_likelihood must be one of {LIKELIHOODS}, got {gene_likelihood!r}")
    if not isinstance(x, Tensor) or x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x: vectors (N >= 2, G) needed, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values")
    x = x.float()
    if gene_likelihood == "normal":
        c = x
    else:
        if float(x.min()) < 0:
            raise ValueError(f"x has negative values (min {float(x.min()):.3g}): scVI's "
                             f"{gene_likelihood} likelihood needs log-normalised expression >= 0 "
                             "(it is given expm1(x)); use gene_likelihood=normal for other data")
        c = torch.expm1(x)
    empty = int((c.sum(1) <= 0).sum())
    if empty:
        raise ValueError(f"x: {empty} cells have no expression (scVI's library size is log of "
                         "the per-cell sum)")
    return c


class _Quiet:
    """Silence lightning's info lines and scVI's known warnings (non-integer counts) while
    training; progress bars stay as asked."""

    def __enter__(self):
        self._warn = warnings.catch_warnings()
        self._warn.__enter__()
        for msg in ("adata.X does not contain unnormalized count data",
                    "The value argument must be within the support",
                    "The number of training batches", ".*does not have many workers",
                    ".*isinstance\\(treespec, LeafSpec\\)"):
            warnings.filterwarnings("ignore", message=msg)
        self._levels = {n: logging.getLogger(n).level
                        for n in ("lightning.pytorch", "lightning.fabric", "scvi")}
        for n in self._levels:
            logging.getLogger(n).setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc):
        for n, lvl in self._levels.items():
            logging.getLogger(n).setLevel(lvl)
        self._warn.__exit__(*exc)
        return False


def _checkpoint_callback(d: Path, cfg: ScviConfig, total: int):
    """A lightning callback writing `lightning.ckpt` (atomically) and `state.pt` every
    `save_every` epochs and at the end of training."""
    from lightning.pytorch import Callback

    class _Save(Callback):
        def _save(self, trainer, done: int) -> None:
            from featsel.rundir import atomic_save

            atomic_save(d / "lightning.ckpt", lambda tmp: trainer.save_checkpoint(str(tmp)),
                        suffix=".ckpt")
            write_state(d, cfg, done, {}, {"epochs": int(total)})

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            done = trainer.current_epoch + 1
            if done % cfg.save_every == 0 and done < total:
                self._save(trainer, done)

        def on_train_end(self, trainer, pl_module) -> None:
            self._save(trainer, max(trainer.current_epoch, 0))

        # lightning keeps a callback's state in its checkpoints: the RNGs (data shuffling,
        # dropout), which it does not restore itself, so that a resumed run is the same run
        def state_dict(self) -> dict:
            return {"torch_rng": torch.get_rng_state(), "numpy_rng": _numpy_rng()}

        def load_state_dict(self, state: dict) -> None:
            torch.set_rng_state(state["torch_rng"])
            _numpy_rng(state["numpy_rng"])

    return _Save()


def _numpy_rng(state: dict | None = None) -> dict | None:
    """numpy's global RNG state as plain data (get), or restore it (set)."""
    import numpy as np

    if state is not None:
        keys = np.asarray(state["keys"], dtype=np.uint32)
        np.random.set_state((state["kind"], keys, state["pos"], state["has_gauss"],  # noqa: NPY002
                             state["gauss"]))
        return None
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 (the legacy global one)
    return {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
            "gauss": float(gauss)}


def _accelerator(device: str) -> tuple[str, Any]:
    if device == "cpu":
        return "cpu", 1
    if device.startswith("cuda"):
        idx = device.partition(":")[2]
        return "gpu", [int(idx)] if idx else 1
    raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}")


def train_scvi(cfg: ScviConfig, *, resume: bool = False, force: bool = False,
        progress: bool = True,
               x: Tensor | None = None) -> dict:
    """Train (or continue) scVI on the data set's vectors (or on `x`: (N, G) log-normalised,
    when given) and write the featurizer. Returns a summary with `featurizer` (the checkpoint
    path: the spec to pass to `--featurizers`), `epochs`, `losses` (training loss per epoch of
    this call), `latent_max_abs_diff` (featsel's encoder vs scvi-tools' latent mean)."""
    scvi = require_scvi(cfg.data)
    check_positive(latent_dim=cfg.latent_dim, hidden=cfg.hidden, depth=cfg.depth,
                   batch_size=cfg.batch_size, lr=cfg.lr, save_every=cfg.save_every)
    if cfg.epochs is not None and cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg.epochs}")
    if not 0 <= cfg.dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout}")
    accelerator, devices = _accelerator(cfg.device)
    if x is None:
        from featsel.data import load_manifest
        from generation.pretrain.mlp_vae import load_vectors

        if load_manifest(cfg.data).modality != "vector":
            raise ValueError(f"data {cfg.data!r}: pretrain scvi needs vector data (cells x genes)")
        x = load_vectors(cfg.data, cfg.split, cfg.data_root, cfg.n_max)
    c = scvi_input(x, cfg.gene_likelihood)
    x = x.float()
    epochs = cfg.epochs or default_epochs(len(x))
    d, state = prepare_out(cfg.out, cfg, resume, ARCH_KEYS, force=force)
    ckpt = d / "lightning.ckpt"
    if state is not None and not ckpt.is_file():
        raise FileNotFoundError(f"--resume: {ckpt} does not exist")
    if state is not None and int(state["step"]) > epochs:
        raise ValueError(f"--resume: the run in {d} has done {state['step']} epochs, more than "
                         f"epochs={epochs}")

    import anndata

    with _Quiet():
        scvi.settings.seed = cfg.seed
        adata = anndata.AnnData(c.numpy())
        scvi.model.SCVI.setup_anndata(adata)
        model = scvi.model.SCVI(
            adata, n_latent=cfg.latent_dim, n_hidden=cfg.hidden, n_layers=cfg.depth,
            dropout_rate=cfg.dropout, gene_likelihood=cfg.gene_likelihood,
            log_variational=cfg.gene_likelihood != "normal")
        model.train(
            max_epochs=epochs, accelerator=accelerator, devices=devices, train_size=1.0,
            batch_size=cfg.batch_size, plan_kwargs={"lr": cfg.lr},
            enable_progress_bar=progress, default_root_dir=str(d),
            callbacks=[_checkpoint_callback(d, cfg, epochs)],
            ckpt_path=str(ckpt) if state is not None else None)
        model.module.eval()
        z_ref = torch.as_tensor(model.get_latent_representation(adata, give_mean=True))
        model.save(str(d / "scvi_model"), overwrite=True, save_anndata=False)
        hist = model.history.get("train_loss_epoch", model.history.get("train_loss"))
    net = ScviEncoder.from_scvi(model.module.z_encoder).cpu()
    with torch.no_grad():
        z = torch.cat([net(b) for b in x.split(1024)])
    diff = float((z - z_ref.float()).abs().max())
    fcfg = ScviEncoderConfig(n_features=x.shape[1], latent_dim=cfg.latent_dim, hidden=cfg.hidden,
                             depth=cfg.depth, seed=cfg.seed)
    feat = ScviEncoderFeaturizer(fcfg, net, None, (x.shape[1],))
    path = save_featurizer(feat, d / "featurizer.pt")
    losses = [float(v) for v in hist.iloc[:, 0].tolist()] if hist is not None else []
    return {"kind": "scvi", "model": "scvi-encoder", "featurizer": str(path),
            "scvi_model": str(d / "scvi_model"), "scvi_tools": scvi.__version__,
            "gene_likelihood": cfg.gene_likelihood, "latent_dim": cfg.latent_dim,
            "epochs": epochs, "step": epochs, "losses": losses,
            "latent_max_abs_diff": diff, "out": str(d)}
