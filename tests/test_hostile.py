"""Hostile input through the CLI and the API (issue 15): bad flags, corrupt and malicious files,
foreign folders, changed settings on resume, interrupted runs.

Every CLI case asserts the exit code, exactly one error line on stderr naming what was wrong
(the expected fragment), and no traceback. The data-loss cases also assert that the user's
files are byte-identical afterwards; the malicious-pickle cases that the payload never ran.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from featsel.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "digits_tiny.yaml"
S = ["score", "--data", "digits", "--quiet", "--no-cache", "--max-samples", "300",
     "--repeats", "1", "--recipe", "paper", "--eval-featurizers", "none"]
TRAIN_SMALL = ["--set", "n_gen=4", "--set", "n_pos=8", "--set", "n_unc=4", "--set",
               "queue_size=16", "--set", "uncond_queue_size=32", "--set", "progress=false"]


class _Payload:
    """A pickle that runs a shell command when loaded without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The files the cases point at (formatted into their argv as {name})."""
    d = tmp_path_factory.mktemp("hostile")
    marker = d / "PAYLOAD_RAN"
    files = {"tmp": d, "marker": marker}
    for name in ("evil.pt", "evil.pth", "evil.bin"):
        with open(d / name, "wb") as f:
            pickle.dump(_Payload(marker), f)
        files[name.replace(".", "_")] = d / name
    (d / "garbage.bin").write_bytes(os.urandom(256))
    (d / "garbage.safetensors").write_bytes(os.urandom(256))
    (d / "text.pt").write_text("hello\n")
    files.update(garbage_bin=d / "garbage.bin", garbage_st=d / "garbage.safetensors",
                 text_pt=d / "text.pt")
    (d / "bad.yaml").write_text("steps: [1, 2\n")
    (d / "tag.yaml").write_text("steps: !!python/object/apply:os.system ['true']\n")
    (d / "list.yaml").write_text("- a\n- b\n")
    (d / "cands.yaml").write_text("candidates: {a: 1}\n")
    files.update(bad_yaml=d / "bad.yaml", tag_yaml=d / "tag.yaml", list_yaml=d / "list.yaml",
                 cands_yaml=d / "cands.yaml")
    user = d / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine\n")
    files["user"] = user
    empty = d / "empty"
    empty.mkdir()
    files["empty"] = empty
    badjson = d / "badjson"
    badjson.mkdir()
    (badjson / "results.json").write_text("{not json")
    files["badjson"] = badjson
    # a trained run (2 steps) to resume, sample and evaluate
    run = d / "run"
    assert main(["train", "--config", str(TINY), "--steps", "2", "--out", str(run),
                 *TRAIN_SMALL]) == 0
    files["run"] = run
    trunc = d / "trunc"
    trunc.mkdir()
    raw = (run / "checkpoint.pt").read_bytes()
    (trunc / "checkpoint.pt").write_bytes(raw[: len(raw) // 2])
    files["trunc"] = trunc
    evilrun = d / "evilrun"
    evilrun.mkdir()
    shutil.copy(d / "evil.pt", evilrun / "checkpoint.pt")
    files["evilrun"] = evilrun
    badstate = d / "badstate"
    badstate.mkdir()
    shutil.copy(d / "evil.pt", badstate / "state.pt")
    files["badstate"] = badstate
    # a diffusers VAE folder whose weights file is garbage
    from diffusers import AutoencoderKL

    badvae = d / "badvae"
    AutoencoderKL(in_channels=1, out_channels=1, latent_channels=2, block_out_channels=(8,),
                  down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
                  norm_num_groups=4, layers_per_block=1).save_pretrained(badvae,
                                                                         safe_serialization=False)
    (badvae / "diffusion_pytorch_model.bin").write_bytes(os.urandom(300))
    files["badvae"] = badvae
    return files


def cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    return rc, capsys.readouterr().err


def check_one_line(err: str, expect: str) -> None:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    assert expect.lower() in lines[0].lower(), lines[0]


# (argv template, exit code, fragment of the error line). {name} -> env[name].
ARGPARSE = [
    (S + ["--bogus"], "unrecognized arguments"),
    (S + ["--n", "abc"], "invalid int value"),
    (S + ["--taus", "nan"], "finite"),
    (S + ["--taus", "a,b"], "comma-separated numbers"),
    (S + ["--tau", "inf"], "finite"),
    (S + ["--repeats", "x"], "invalid int value"),
    (S + ["--perplexity", "nan"], "finite"),
    (S + ["--criterion", "bogus"], "invalid choice"),
    (S + ["--eps-rule", "bogus"], "invalid choice"),
    (S + ["--recipe", "bogus"], "invalid choice"),
    (S + ["--max-samples", "1.5"], "invalid int value"),
    (S + ["--featurizers"], "expected one argument"),
    (["train", "--steps", "x"], "invalid int value"),
    (["train", "--bogus"], "unrecognized arguments"),
    (["sample"], "required"),
    (["sample", "--run", "r", "--alpha", "nan"], "finite"),
    (["sample", "--run", "r", "--alpha", "inf"], "finite"),
    (["sample", "--run", "r", "--alpha", "a"], "comma-separated numbers"),
    (["sample", "--run", "r", "--classes", "x"], "integers"),
    (["sample", "--run", "r", "--n", "x"], "invalid int value"),
    (["sample", "--run", "r", "--decay", "nan"], "finite"),
    (["evaluate", "--run", "r", "--alphas", "nan"], "finite"),
    (["evaluate", "--run", "r", "--n-per-class", "x"], "invalid int value"),
    (["validate"], "required"),
    (["validate", "--out", "v", "--budget", "x"], "invalid int value"),
    (["validate", "--out", "v", "--eval-alpha", "nan"], "finite"),
    (["validate", "--out", "v", "--eval-fractions", "x"], "comma-separated numbers"),
    (["validate", "--out", "v", "--tau", "nan"], "finite"),
    (["validate", "--out", "v", "--criterion", "bogus"], "invalid choice"),
    (["pretrain", "bogus"], "invalid choice"),
    (["pretrain", "vae", "--steps", "x"], "invalid int value"),
    (["cache", "bogus"], "invalid choice"),
    (["report"], "required"),
    (["bogus-command"], "invalid choice"),
]

SCORE = [
    (["--n", "0"], "--n: expected"),
    (["--n", "1"], "--n: expected"),
    (["--n", "-5"], "--n: expected"),
    (["--max-samples", "1"], "--max-samples"),
    (["--max-samples", "0"], "--max-samples"),
    (["--repeats", "0"], "--repeats"),
    (["--repeats", "-1"], "--repeats"),
    (["--perplexity", "0.5"], "--perplexity"),
    (["--tau", "0.02"], "--tau"),
    (["--taus", "0", "--tau", "0"], "positive"),
    (["--taus", "-1", "--tau", "-1"], "positive"),
    (["--max-locations", "-1"], "--max-locations"),
    (["--device", "cuda"], "cuda"),
    (["--device", "bogus"], "--device"),
    (["--device", "cuda:7"], "cuda"),
    (["--data", "nosuch"], "nosuch"),
    (["--data", "/nonexistent/manifest.yaml"], "manifest.yaml"),
    (["--split", "nosuch"], "unknown split"),
    (["--featurizers", "nosuch"], "unknown featurizer"),
    (["--featurizers", "pca:bogus=1"], "bogus"),
    (["--featurizers", "pca:dim=abc"], "dim"),
    (["--featurizers", "noise:dim=0"], "dim must be >= 1"),
    (["--featurizers", "random-vit:num_heads=5,embed_dim=64"], "divisible"),
    (["--featurizers", "checkpoint:path=/etc/passwd"], "not a readable torch file"),
    (["--featurizers", "checkpoint:path=/nonexistent.pt"], "does not exist"),
    (["--featurizers", "checkpoint:path={evil_pt}"], "not a readable torch file"),
    (["--featurizers", "{evil_pt}"], "not a readable torch file"),
    (["--featurizers", "{text_pt}"], "not a readable torch file"),
    (["--featurizers", "cnn-teacher:path=/etc/passwd"], "teacher"),
    (["--featurizers", "cnn-teacher:path={evil_pt}"], "teacher"),
    (["--featurizers", "vit:weights={evil_pth}"], "not a readable torch file"),
    (["--featurizers", "vit:weights={evil_bin}"], "not a readable torch file"),
    (["--featurizers", "vit:weights={garbage_bin}"], "not a readable torch file"),
    (["--featurizers", "vit:weights={garbage_st}"], "not a readable safetensors file"),
    (["--featurizers", "random-vit:weights=/nonexistent.pt"], "does not exist"),
    (["--featurizers", "inception:weights={evil_pth}"], "not a readable torch file"),
    (["--featurizers", "vit"], "offline"),
    (["--featurizers", "/nonexistent/feats.yaml"], "no file"),
    (["--featurizers", "{cands_yaml}"], "must hold"),
    (["--featurizers", ","], "at least one"),
    (["--featurizers", "pca:dim=8", "--eval-featurizers", "nosuch"], "unknown featurizer"),
    (["--featurizers", "pca:dim=8", "--space", "bogus"], "bogus"),
    (["--featurizers", "pca:dim=8", "--out", "/etc/passwd"], "not a directory"),
    (["--featurizers", "pca:dim=8", "--out", "{user}"], "not empty"),
    (["--featurizers", "pca:dim=8", "--out", ".", "--force"], "refusing"),
    (["--featurizers", "pca:dim=8", "--out", "..", "--force"], "refusing"),
    (["--data", "mnist", "--data-root", "/nonexistent"], "/nonexistent"),
    (["--featurizers", "identity", "--space", "vae:path={badvae}"], "could not load the VAE"),
    (["--featurizers", "identity", "--space", "vae:path={empty}"], "no config.json"),
]

TRAIN = [
    (["--config", "/nonexistent.yaml"], "does not exist"),
    (["--config", "{bad_yaml}"], "yaml"),
    (["--config", "{tag_yaml}"], "yaml"),
    (["--config", "{list_yaml}"], "mapping"),
    (["--set", "no_eq"], "key=value"),
    (["--set", "unknown_key=1"], "unknown config key"),
    (["--set", "steps=abc"], "steps"),
    (["--set", "steps=-1"], "steps must be >= 1"),
    (["--set", "lr=0"], "lr must be > 0"),
    (["--set", "model_args={{bogus: 3}}"], "model_args"),
    (["--set", "steps=["], "not valid yaml"),
    (["--set", "!!python/object:os.system"], "key=value"),
    (["--set", "steps=!!python/object/apply:os.system [true]"], "yaml"),
    (["--model", "bogus"], "bogus"),
    (["--featurizer", "nosuch"], "unknown featurizer"),
    (["--data", "nosuch"], "nosuch"),
    (["--device", "cuda"], "cuda"),
    (["--device", "bogus"], "--device"),
    (["--out", "/etc/passwd"], "not a directory"),
    (["--out", "{user}"], "not empty"),
    (["--out", ".", "--force"], "refusing"),
    (["--steps", "0"], "steps must be >= 1"),
    (["--set", "alpha_min=0.5"], "alpha_min"),
    (["--set", "ema_decays=[1.5]"], "ema_decays"),
    (["--set", "betas=[0.9]"], "betas"),
    (["--set", "lr_schedule=bogus"], "lr_schedule"),
    (["--set", "n_classes=11"], "n_classes"),
    (["--set", "loss.bogus=1"], "loss.bogus"),
    (["--set", "data_split=nosuch"], "unknown split"),
]

RESUME = [  # the trained run {run} continued with other settings, or without --resume
    (["--set", "seed=1"], "seed"),
    (["--featurizer", "pca:dim=16"], "featurizer"),
    (["--set", "lr=0.01"], "lr"),
    (["--model", "tiny/4"], "model"),
    (["--data", "satimage"], "data"),
    (["--set", "n_gen=8"], "n_gen"),
    (["--set", "loss.iterations=converged"], "loss.iterations"),
]

SAMPLE_EVAL = [
    (["sample", "--run", "/nonexistent"], "does not exist"),
    (["sample", "--run", "{empty}"], "does not exist"),
    (["sample", "--run", "{trunc}"], "corrupt"),
    (["sample", "--run", "{evilrun}"], "corrupt"),
    (["sample", "--run", "{run}", "--alpha", "0.5"], "alphas >= 1"),
    (["sample", "--run", "{run}", "--classes", "99"], "--classes"),
    (["sample", "--run", "{run}", "--n", "0"], "--n"),
    (["sample", "--run", "{run}", "--device", "cuda"], "cuda"),
    (["evaluate", "--run", "{run}", "--n-per-class", "0"], "--n-per-class"),
    (["evaluate", "--run", "{run}", "--n-per-class", "1"], "--n-per-class"),
    (["evaluate", "--run", "{run}", "--alphas", "0.5"], "alphas >= 1"),
    (["evaluate", "--run", "/nonexistent"], "does not exist"),
    (["evaluate", "--run", "{trunc}"], "corrupt"),
    (["report", "{empty}"], "results.json"),
    (["report", "{badjson}"], "not valid json"),
]

PRETRAIN = [
    (["pretrain", "vae", "--out", "{user}"], "not empty"),
    (["pretrain", "vae", "--out", "{badstate}", "--resume"], "--out"),
    (["pretrain", "vae", "--out", "{run}"], "featsel train run"),
    (["pretrain", "vae", "--out", "{tmp}/p1", "--set", "bogus=1"], "bogus"),
    (["pretrain", "vae", "--out", "{tmp}/p2", "--set", "noeq"], "KEY=VALUE"),
    (["pretrain", "vae", "--out", "{tmp}/p3", "--data", "nosuch"], "nosuch"),
    (["pretrain", "vae", "--data", "digits", "--out", "{tmp}/p4", "--device", "cuda"], "cuda"),
    (["pretrain", "mae", "--out", "{tmp}/p5", "--mask-ratio", "2"], "mask_ratio"),
    (["pretrain", "teacher", "--data", "digits", "--out", "{tmp}/p6", "--steps", "0"], "steps"),
    (["pretrain", "distill", "--data", "digits", "--out", "{tmp}/p7", "--teacher", "{evil_pt}"],
     "not a readable torch file"),
]

VALIDATE = [
    (["--jobs", "0"], "--jobs"),
    (["--budget", "0"], "--budget"),
    (["--seeds", "0"], "--seeds"),
    (["--eval-alpha", "0.5"], "--eval-alpha"),
    (["--eval-fractions", "0,2"], "--eval-fractions"),
    (["--score-repeats", "0"], "--score-repeats"),
    (["--n-boot", "0"], "--n-boot"),
    (["--eval-n-per-class", "1"], "--eval-n-per-class"),
    (["--score-n", "1"], "--score-n"),
    (["--device", "cuda"], "cuda"),
    (["--config", "/nonexistent.yaml"], "does not exist"),
    (["--set", "bogus=1"], "bogus"),
]


def _fill(argv: list[str], env: dict) -> list[str]:
    return [a.format(**{k: str(v) for k, v in env.items()}) for a in argv]


def _run_case(argv, rc, expect, env, capsys):
    got, err = cli(_fill(argv, env), capsys)
    assert got == rc, err
    check_one_line(err, expect)
    assert not env["marker"].exists(), "a pickle payload ran"


@pytest.mark.parametrize("argv, expect", ARGPARSE)
def test_flag_errors_are_one_line(argv, expect, env, capsys):
    _run_case(argv, 2, expect, env, capsys)


@pytest.mark.parametrize("extra, expect", SCORE)
def test_score_refuses(extra, expect, env, capsys):
    out = env["tmp"] / "score_out"
    _run_case(S + ["--out", str(out)] + extra if "--out" not in extra else S + extra,
              1, expect, env, capsys)
    assert not out.exists()


@pytest.mark.parametrize("extra, expect", TRAIN)
def test_train_refuses(extra, expect, env, capsys, tmp_path):
    out = [] if "--out" in extra else ["--out", str(tmp_path / "t")]
    _run_case(["train", "--config", str(TINY), "--set", "steps=1", *out, *TRAIN_SMALL, *extra]
              if "--config" not in extra else ["train", *out, *extra], 1, expect, env, capsys)
    assert not (tmp_path / "t" / "config.yaml").exists()


@pytest.mark.parametrize("extra, expect", RESUME)
def test_resume_with_other_settings_is_refused(extra, expect, env, capsys):
    run = env["run"]
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    _run_case(["train", "--config", str(TINY), "--steps", "4", "--out", str(run), "--resume",
               *TRAIN_SMALL, *extra], 1, expect, env, capsys)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_resume_needs_the_flag_and_accepts_what_may_change(env, capsys, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(env["run"], run)
    _run_case(["train", "--config", str(TINY), "--steps", "2", "--out", str(run),
               *TRAIN_SMALL], 1, "--resume", env, capsys)
    # steps, device, log frequency and progress may change
    assert main(["train", "--config", str(TINY), "--steps", "3", "--out", str(run), "--resume",
                 "--device", "cpu", *TRAIN_SMALL, "--set", "log_every=2"]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 3


@pytest.mark.parametrize("argv, expect", SAMPLE_EVAL + PRETRAIN)
def test_sample_evaluate_pretrain_report_refuse(argv, expect, env, capsys):
    _run_case(argv, 1, expect, env, capsys)


@pytest.mark.parametrize("extra, expect", VALIDATE)
def test_validate_checks_everything_before_work(extra, expect, env, capsys, tmp_path):
    out = tmp_path / "v"
    _run_case(["validate", "--featurizers", "identity", "--out", str(out), "--quiet",
               "--config", str(TINY), *extra] if "--config" not in extra else
              ["validate", "--featurizers", "identity", "--out", str(out), *extra],
              1, expect, env, capsys)
    assert not out.exists()


@pytest.mark.parametrize("out, expect", [("/etc/passwd", "not a directory"),
                                         ("{user}", "not empty")])
def test_validate_foreign_out(out, expect, env, capsys):
    _run_case(["validate", "--featurizers", "identity", "--out", out, "--config", str(TINY)],
              1, expect, env, capsys)
    assert (env["user"] / "notes.txt").read_text() == "mine\n"


# --- nothing a user put there is lost ----------------------------------------------------------
def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_train_on_a_foreign_folder_keeps_its_files(tmp_path, capsys, env):
    d = tmp_path / "d"
    d.mkdir()
    (d / "config.yaml").write_text("mine\n")
    (d / "metrics.jsonl").write_text('{"step": 5}\n')
    before = _snapshot(d)
    _run_case(["train", "--config", str(TINY), "--steps", "2", "--out", str(d), *TRAIN_SMALL],
              1, "not empty", env, capsys)
    assert _snapshot(d) == before
    # --force replaces it
    assert main(["train", "--config", str(TINY), "--steps", "1", "--out", str(d), "--force",
                 *TRAIN_SMALL]) == 0
    assert (d / "checkpoint.pt").is_file() and (d / "config.yaml").read_text() != "mine\n"


def test_pretrain_on_a_foreign_folder_keeps_its_files(tmp_path, capsys, env):
    p = tmp_path / "p"
    (p / "vae").mkdir(parents=True)
    (p / "vae" / "README.txt").write_text("mine\n")
    (p / "config.json").write_text("{}")
    before = _snapshot(p)
    _run_case(["pretrain", "vae", "--out", str(p), "--steps", "1"], 1, "not empty", env, capsys)
    assert _snapshot(p) == before


def test_validate_keeps_user_files_in_its_score_folder(tmp_path, capsys, env):
    v = tmp_path / "v"
    (v / "score").mkdir(parents=True)
    (v / "score" / "user.txt").write_text("mine\n")
    _run_case(["validate", "--featurizers", "identity", "--out", str(v), "--config", str(TINY),
               "--quiet", "--budget", "1", "--seeds", "1", "--score-max-samples", "300",
               "--score-repeats", "1"], 1, "did not write", env, capsys)
    assert (v / "score" / "user.txt").read_text() == "mine\n"


def test_score_on_a_folder_that_appeared_meanwhile(tmp_path):
    """Two runs on one --out: the second publishes into a folder the first filled since it
    started; it fails, the first's files stay, and its own results are kept beside."""
    from featsel.rundir import publish_dir

    out = tmp_path / "out"
    first = tmp_path / "first"
    first.mkdir()
    (first / "results.json").write_text("first")
    publish_dir(first, out)
    second = tmp_path / "second"
    second.mkdir()
    (second / "results.json").write_text("second")
    (second / "report.html").write_text("second")
    with pytest.raises(ValueError, match="another run"):
        publish_dir(second, out)
    assert _snapshot(out) == {"results.json": b"first"}
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("out.")]
    assert len(kept) == 1 and (kept[0] / "report.html").read_text() == "second"
    # --force replaces in one step
    third = tmp_path / "third"
    third.mkdir()
    (third / "results.json").write_text("third")
    publish_dir(third, out, force=True)
    assert _snapshot(out) == {"results.json": b"third"}


def test_train_ctrl_c_is_one_line(monkeypatch, capsys, tmp_path, env):
    import generation.train as T

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "train", interrupted)
    rc, err = cli(["train", "--config", str(TINY), "--out", str(tmp_path / "r")], capsys)
    assert rc == 130 and "Traceback" not in err
    assert err.strip() == "featsel train: interrupted; rerun with --resume to continue"


def test_score_ctrl_c_is_one_line(monkeypatch, capsys):
    import featsel.score as SC

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(SC, "run_score", interrupted)
    rc, err = cli(S + ["--featurizers", "identity"], capsys)
    assert rc == 130 and err.strip() == "featsel score: interrupted"


def test_unexpected_errors_are_one_line_with_a_debug_hint(monkeypatch, capsys):
    import featsel.score as SC

    def broken(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(SC, "run_score", broken)
    rc, err = cli(S + ["--featurizers", "identity"], capsys)
    assert rc == 1
    check_one_line(err, "FEATSEL_DEBUG=1")
    monkeypatch.setenv("FEATSEL_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(S + ["--featurizers", "identity"])


def test_a_torn_last_metrics_line_is_what_a_kill_leaves(tmp_path, env):
    run = tmp_path / "run"
    shutil.copytree(env["run"], run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss": 0.')
    assert main(["train", "--config", str(TINY), "--steps", "3", "--out", str(run), "--resume",
                 *TRAIN_SMALL]) == 0
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows][-1] == 3


# --- data checked where it is loaded ------------------------------------------------------
def _h5ad_manifest(tmp_path: Path, x) -> Path:
    import anndata
    import numpy as np
    import pandas as pd

    obs = pd.DataFrame({"cell_type": np.repeat(["a", "b"], len(x) // 2)})
    obs.index = obs.index.astype(str)
    anndata.AnnData(X=np.asarray(x, dtype=np.float32), obs=obs).write_h5ad(tmp_path / "d.h5ad")
    m = tmp_path / "m.yaml"
    m.write_text(f"""name: hostile
modality: vector
source: h5ad
path: {tmp_path / 'd.h5ad'}
label: cell_type
splits: {{train: 0.5, test: 0.5}}
generation_space: ambient
featurizers: {{candidates: [identity], evaluation: [identity]}}
options: {{normalize_total: null, log1p: false, n_top_genes: null}}
""")
    return m


@pytest.mark.parametrize("kind, expect", [("nan", "NaN or infinite"), ("inf", "NaN or infinite"),
                                          ("huge", "overflow"), ("constant", "identical")])
@pytest.mark.parametrize("command", ["score", "train"])
def test_bad_data_is_one_line_naming_the_data_set(kind, expect, command, tmp_path, capsys, env):
    import numpy as np

    x = np.random.default_rng(0).normal(size=(40, 5))
    if kind == "nan":
        x[::5, 2] = np.nan
    elif kind == "inf":
        x[::5, 1] = np.inf  # in both splits
    elif kind == "huge":
        x *= 1e30
    else:
        x[:] = 1.0
    m = _h5ad_manifest(tmp_path, x)
    argv = (["score", "--data", str(m), "--quiet", "--out", str(tmp_path / "o")]
            if command == "score" else
            ["train", "--data", str(m), "--model", "mlp-tiny", "--out", str(tmp_path / "o"),
             *TRAIN_SMALL])
    _run_case(argv, 1, expect, env, capsys)
    assert not (tmp_path / "o").exists()


def test_a_truncated_data_file_is_one_line_naming_it(tmp_path, capsys, env):
    import numpy as np

    m = _h5ad_manifest(tmp_path, np.random.default_rng(0).normal(size=(40, 5)))
    raw = (tmp_path / "d.h5ad").read_bytes()
    (tmp_path / "d.h5ad").write_bytes(raw[: len(raw) // 3])
    _run_case(["score", "--data", str(m), "--quiet"], 1, "d.h5ad", env, capsys)


# --- silent wrong results --------------------------------------------------------------------
def test_unconverged_solves_are_marked_and_warned(tmp_path, capsys):
    rc = main(S[:1] + ["--data", "digits", "--quiet", "--no-cache", "--max-samples", "300",
                       "--repeats", "1", "--eval-featurizers", "none", "--featurizers",
                       "pca:dim=4", "--no-controls", "--taus", "1e-8", "--tau", "1e-8",
                       "--eps-rule", "tau", "--out", str(tmp_path / "o")])
    assert rc == 0
    err = capsys.readouterr().err
    assert "did not converge" in err and "Traceback" not in err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["warnings"] and "did not converge" in res["warnings"][0]
    assert res["diagnostics"]["pca:dim=4"]["unconverged"]
    assert "did not converge" in (tmp_path / "o" / "report.html").read_text()


def test_a_featurizer_path_with_an_equals_sign_is_its_own_spec():
    from featsel.score import parse_featurizer_list

    assert parse_featurizer_list("identity,runs/a=b/featurizer.pt,vit:depth=4,tap_every=2") == [
        "identity", "runs/a=b/featurizer.pt", "vit:depth=4,tap_every=2"]


def test_api_checks_that_were_silent():
    from featsel.diagnostics.alignment import alignment_r2
    from featsel.diagnostics.stability import stability_curve

    phi = torch.randn(200, 5)
    with pytest.raises(ValueError, match="constant"):
        alignment_r2(phi, torch.ones(200, 3))
    with pytest.raises(ValueError, match="ns"):
        stability_curve({"b": torch.randn(100, 4)}, ns=[])


def test_a_swapped_cache_file_is_not_served(tmp_path):
    from featsel.cache import FeatureCache

    cache = FeatureCache(tmp_path)
    a, b = cache.key(featurizer="identity"), cache.key(featurizer="pca:dim=16")
    cache.put(a, {"maps": [torch.zeros(2)]})
    cache.put(b, {"maps": [torch.ones(2)]})
    shutil.copy(tmp_path / f"{b}.pt", tmp_path / f"{a}.pt")
    with pytest.warns(UserWarning):
        assert cache.get(a) is None
    assert torch.equal(cache.get(b)["maps"][0], torch.ones(2))


def test_the_folder_rule_in_one_place(tmp_path):
    """featsel.rundir.claim_dir: new, own (resume), own with other settings, foreign, forced,
    and a compatible command's folder (validate completes a select folder)."""
    from featsel.rundir import MARKER, claim_dir

    d = tmp_path / "d"
    assert claim_dir(d, "train", {"lr": 1, "steps": 5}) is False and (d / MARKER).is_file()
    (d / "x.txt").write_text("run file")
    with pytest.raises(ValueError, match="--resume"):
        claim_dir(d, "train", {"lr": 1, "steps": 5})
    assert claim_dir(d, "train", {"lr": 1, "steps": 9}, resume=True, may_change=("steps",))
    with pytest.raises(ValueError, match=r"lr 1 -> 2"):
        claim_dir(d, "train", {"lr": 2, "steps": 9}, resume=True)
    with pytest.raises(ValueError, match="featsel train run"):
        claim_dir(d, "pretrain", {}, resume=True)
    assert claim_dir(d, "validate", {}, resume=True, compatible=("train",))
    assert claim_dir(d, "pretrain", {"a": 1}, force=True) is False
    assert sorted(p.name for p in d.iterdir()) == [MARKER]


def test_train_preset_refuses_a_foreign_folder_before_loading_data(tmp_path, capsys,
                                                                   monkeypatch):
    """Without --config on a CPU the preset loads the data in the CLI (to size n_classes):
    the folder rule is checked first, so a refused --out costs no data load."""
    import generation.train as T

    d = tmp_path / "d"
    d.mkdir()
    (d / "notes.txt").write_text("mine\n")
    before = _snapshot(d)

    def no_load(cfg):
        raise AssertionError("the data was loaded before the --out check")

    monkeypatch.setattr(T, "load_training_data", no_load)
    rc, err = cli(["train", "--data", "digits", "--device", "cpu", "--out", str(d)], capsys)
    assert rc == 1
    check_one_line(err, "not empty")
    assert _snapshot(d) == before
