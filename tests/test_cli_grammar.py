"""One CLI grammar (issue 16): every command takes --json and --quiet, shows its defaults in
--help, lists are comma-separated, and `featsel evaluate` prints a readable table."""

import argparse
import json

import pytest

from featsel.cli import build_parser, main


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_every_command_takes_json_and_quiet_and_shows_defaults(name):
    p = _subparsers()[name]
    flags = {s for a in p._actions for s in a.option_strings}
    assert {"--json", "--quiet"} <= flags
    fmt = p.formatter_class(prog=name)
    for a in p._actions:  # every option with a value default says it in --help
        if a.option_strings and a.help and a.default not in (None, False, argparse.SUPPRESS):
            assert "default" in fmt._get_help_string(a), (name, a.option_strings)
    assert "--help" in p.format_help()


@pytest.mark.parametrize("name", ["score", "train", "sample", "evaluate", "pretrain",
                                  "validate"])
def test_seed_and_device_are_documented(name):
    p = _subparsers()[name]
    helps = {s: a.help for a in p._actions for s in a.option_strings}
    assert helps.get("--seed") and helps.get("--device")


def test_lists_are_comma_separated_everywhere():
    p = build_parser()
    a = p.parse_args(["evaluate", "--run", "r", "--featurizers", "pca:dim=8,identity",
                      "--alphas", "1,2"])
    assert a.featurizers == "pca:dim=8,identity" and a.alphas == [1.0, 2.0]
    a = p.parse_args(["sample", "--run", "r", "--alphas", "1,1.5", "--classes", "0,3"])
    assert a.alphas == [1.0, 1.5] and a.classes == [0, 3]
    assert p.parse_args(["sample", "--run", "r", "--alpha", "2"]).alphas == [2.0]


def test_evaluate_prints_a_table_with_class_accuracy(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--featurizer", "identity", "--model", "tiny/4",
                 "--steps", "2", "--out", str(out), "--quiet", "--set", "n_gen=4", "--set",
                 "n_pos=8", "--set", "n_unc=4", "--set", "queue_size=16", "--set",
                 "uncond_queue_size=32"]) == 0
    # no --config on a machine without a GPU: the CPU preset, said in one line; --set wins
    err = capsys.readouterr().err
    assert "no --config and no GPU: the CPU preset" in err
    import yaml

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["n_gen"] == 4 and saved["queue_push"] == 32
    assert saved["n_classes"] == 4 and "n_classes=4 of 10" in err  # at most 4 classes a step
    assert main(["evaluate", "--run", str(out), "--featurizers", "pca:dim=8,identity",
                 "--n-per-class", "6", "--alphas", "1,2", "--no-kid"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[1].split()[:3] == ["alpha", "featurizer", "FD"]
    assert sum(ln.startswith(("1 ", "2 ")) for ln in lines) == 4  # 2 alphas x 2 featurizers
    assert "class accuracy: alpha 1 " in text and "real data" in text
    res = json.loads((out / "eval.json").read_text())
    acc = res["class_accuracy"]
    # the ceiling: a logistic regression separates real digits well; 2 training steps do not
    assert acc["real"] > 0.85 and 0 <= acc["alphas"]["1"] <= 1
    assert main(["evaluate", "--run", str(out), "--featurizers", "identity", "--json",
                 "--n-per-class", "4", "--alphas", "1", "--no-kid", "--no-accuracy"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "class_accuracy" not in printed and printed["alphas"]["1"]["identity"]["fd"] > 0


@pytest.mark.parametrize("name", ["score", "train", "sample", "evaluate", "pretrain",
                                  "validate", "select"])
def test_every_command_that_loads_data_takes_data_root(name):
    flags = {s for a in _subparsers()[name]._actions for s in a.option_strings}
    assert "--data-root" in flags
    if name in ("score", "train", "evaluate", "pretrain"):
        assert "--split" in flags


def test_train_split_and_data_root(tmp_path, monkeypatch):
    """--data-root wins over $FEATSEL_DATA_DIR; --split is the training split (typed)."""
    import os

    import yaml

    real_root = os.environ.get("FEATSEL_DATA_DIR")
    if not real_root or not os.path.isdir(os.path.join(real_root, "mnist")):
        pytest.skip("the shared MNIST test split is not here")
    monkeypatch.setenv("FEATSEL_DATA_DIR", "/nonexistent")
    out = tmp_path / "r"
    assert main(["train", "--data", "mnist", "--split", "test", "--data-root", real_root,
                 "--model", "mlp-tiny", "--steps", "1", "--out", str(out), "--quiet",
                 "--set", "space=pca:dim=8", "--set", "n_gen=4", "--set", "n_pos=8",
                 "--set", "n_unc=4"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["data_split"] == "test"


@pytest.mark.parametrize("name", ["validate", "select"])
def test_validate_and_select_flags_reach_their_config(name, monkeypatch, tmp_path):
    """The flags the two sweeps share (one definition in featsel.cli): no flag gives the
    config's defaults, each shared flag reaches the config."""
    import importlib

    module = importlib.import_module(f"generation.{name}")
    config = module.ValidateConfig if name == "validate" else module.SelectConfig
    seen = []
    monkeypatch.setattr(module, f"run_{name}", lambda cfg, out, **kw: seen.append(cfg) or {})
    base = [name, "--json", "--out", str(tmp_path / "o"), "--budget", "12"]
    assert main(base) == 0
    assert seen.pop() == config(budget=12)
    assert main(base + ["--data", "mnist", "--featurizers", "pca:dim=8,identity",
                        "--eval-featurizers", "identity", "--set", "lr=1", "--eval-alpha", "1.5",
                        "--tau", "0.2", "--criterion", "delta_ot", "--score-repeats", "3",
                        "--score-n", "16", "--score-split", "all", "--exclude-aligned",
                        "--eval-n-per-class", "5", "--score-max-samples", "100", "--quiet",
                        "--score-flow", "--score-inversion"]) == 0
    cfg = seen.pop()
    assert (cfg.data, cfg.featurizers, cfg.evaluations, cfg.overrides) == (
        "mnist", ["pca:dim=8", "identity"], ["identity"], ["lr=1"])
    assert (cfg.eval_alpha, cfg.tau, cfg.criterion, cfg.score_repeats, cfg.score_n,
            cfg.score_split, cfg.exclude_aligned, cfg.eval_n_per_class,
            cfg.score_max_samples, cfg.progress, cfg.score_flow, cfg.score_inversion) == (
        1.5, 0.2, "delta_ot", 3, 16, "all", True, 5, 100, False, True, True)


def test_one_set_syntax_for_train_and_pretrain():
    """`--set KEY=VALUE` takes lists as `[a, b]` or `a+b` in both featsel train (its config)
    and featsel pretrain (a trainer's options, converted like featurizer specs)."""
    from featsel.features.spec import options_to_config
    from generation.config import load_config
    from generation.pretrain import CONFIGS

    for form in ("0.02+0.2", "[0.02, 0.2]"):
        assert load_config(None, [f"loss.taus={form}"]).loss.taus == (0.02, 0.2)
    for form in ("16+32", "[16, 32]", "[16,32]"):
        cfg = options_to_config(CONFIGS["vae"], {"block_out_channels": form}, what="pretrain")
        assert cfg.block_out_channels == (16, 32)
    with pytest.raises(ValueError, match="block_out_channels"):
        options_to_config(CONFIGS["vae"], {"block_out_channels": "[16, x]"}, what="pretrain")


def test_validate_flag_defaults_are_validate_config_defaults(monkeypatch, tmp_path):
    """Without flags, `featsel validate` builds ValidateConfig() (its defaults live in
    featsel.defaults, read by both)."""
    import dataclasses

    import generation.validate as gv
    from generation.validate import ValidateConfig

    seen = {}

    def fake(cfg, out, **kw):
        seen["cfg"] = cfg
        return {"commands": []}

    monkeypatch.setattr(gv, "run_validate", fake)
    assert main(["validate", "--out", str(tmp_path / "v"), "--dry-run"]) == 0
    got, want = seen["cfg"], ValidateConfig()
    diff = {f.name: (getattr(got, f.name), getattr(want, f.name))
            for f in dataclasses.fields(ValidateConfig)
            if getattr(got, f.name) != getattr(want, f.name)}
    assert diff == {}, diff


def test_cpu_preset_classes():
    from generation.config import cpu_preset_classes

    assert [cpu_preset_classes(k) for k in (2, 4, 5, 10, 1000)] == [0, 0, 4, 4, 4]
    assert cpu_preset_classes(10, world=3) == 3 and cpu_preset_classes(10, world=8) == 8
