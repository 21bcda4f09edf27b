"""Featurizer pretraining (CLI `featsel pretrain KIND`): candidates for `featsel score`.

    from generation.pretrain import MAEConfig, train_mae, DistillConfig, train_distill
    res = train_mae(MAEConfig(data="mnist", split="test", mask_ratio=0.75, out="runs/mae75"))
    feat = featsel.features.create_featurizer(res["featurizer"])   # a ViT featurizer

- `mae`: masked autoencoding with a timm ViT on generation-space samples (+ the short
  classification fine-tune), `MAEConfig` / `train_mae`.
- `distill`: a ViT student matching a frozen teacher (cosine on global and patch tokens),
  `DistillConfig` / `train_distill`.
- `teacher`: the small CNN classifier used as the in-run teacher, `TeacherConfig` / `train_teacher`.
- `vae`: a small diffusers AutoencoderKL generation space, `VAEConfig` / `train_vae`
  (`create_space("vae:path=<out>/vae")` loads it); on vector data (cells x genes) the MLP VAE
  featurizer `mlp-vae` instead (`<out>/featurizer.pt`, `generation.pretrain.mlp_vae`).
- `scvi`: scvi-tools' SCVI on vector data (the optional extra `featsel[scvi]`), its encoder's
  latent mean as the featurizer `scvi-encoder` (`<out>/featurizer.pt`, loads without
  scvi-tools), `ScviConfig` / `train_scvi` (`generation.pretrain.scvi`).

Every trainer writes `<out>/state.pt` (resume with `resume=True`), `<out>/config.json`, and its
product (`featurizer.pt`, `teacher/teacher.pt` or `teacher.pt`, `vae/`), atomically.
"""

from generation.pretrain.distill import DistillConfig, train_distill
from generation.pretrain.mae import MAEConfig, train_mae
from generation.pretrain.scvi import ScviConfig, train_scvi
from generation.pretrain.teacher import SmallCNN, TeacherConfig, load_teacher, train_teacher
from generation.pretrain.vae import VAEConfig, train_vae, vae_space

CONFIGS = {"mae": MAEConfig, "distill": DistillConfig, "teacher": TeacherConfig, "vae": VAEConfig,
           "scvi": ScviConfig}
TRAINERS = {"mae": train_mae, "distill": train_distill, "teacher": train_teacher, "vae": train_vae,
            "scvi": train_scvi}

__all__ = [
    "CONFIGS",
    "TRAINERS",
    "DistillConfig",
    "MAEConfig",
    "ScviConfig",
    "SmallCNN",
    "TeacherConfig",
    "VAEConfig",
    "load_teacher",
    "train_distill",
    "train_mae",
    "train_scvi",
    "train_teacher",
    "train_vae",
    "vae_space",
]
