"""Every `featsel` command shown in the README runs as written (issue 16), at small sizes.

The fenced bash blocks of README.md are parsed (continuation lines joined, comments dropped);
each `featsel ...` command runs in README order in one workspace (later commands use what
earlier ones wrote: `report out/digits`, `sample --run runs/mnist_pca`, ...), with its
`out/`, `runs/` and file arguments moved into that workspace and size flags appended (they
come last, so they win over the README's: fewer steps, draws and samples). Commands that need
what this machine has not got are listed in NOT_RUN with the reason, and the test checks that
nothing else is skipped.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from featsel.cli import main

REPO = Path(__file__).resolve().parents[1]

NOT_RUN = {  # prefix of the command -> why it is not run here
    "make ": "the two set-up commands; .ci/run runs `make test` itself",
    "torchrun ": "needs 8 GPUs and ImageNet",
    "bash ": "a study script (hours on a CPU) or the GPU benchmark",
    "FEATSEL_DATA_DIR=": "a study script (hours on a CPU)",
    "ray ": "starts a Ray cluster node",
}
ELIDED = " ... "  # a command with `...` stands for the one above with other flags: not run

TRAIN_SMALL = ["--set", "n_gen=4", "--set", "n_pos=8", "--set", "n_unc=4", "--set",
               "queue_size=16", "--set", "uncond_queue_size=32", "--set", "queue_push=8"]
SMALL = {
    "score": ["--max-samples", "300", "--repeats", "1", "--recipe", "paper", "--quiet"],
    "train": ["--steps", "2", "--quiet", *TRAIN_SMALL],
    "sample": ["--n", "2"],
    "evaluate": ["--n-per-class", "10", "--no-kid"],
    "pretrain": ["--steps", "2", "--quiet", "--set", "batch_size=16", "--set", "n_max=400"],
    "select": ["--budget", "3", "--seeds", "1", "--jobs", "1", "--score-max-samples", "300",
               "--score-repeats", "1", "--quiet", "--eval-n-per-class", "4", *TRAIN_SMALL],
    "validate": ["--budget", "2", "--seeds", "1", "--jobs", "1", "--score-max-samples", "300",
                 "--score-repeats", "1", "--no-figures", "--quiet", "--eval-n-per-class", "4",
                 "--eval-fractions", "1", "--n-boot", "50",
                 *TRAIN_SMALL],
}


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    cmds: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    return cmds


def _not_run(cmd: str) -> str | None:
    if ELIDED in f" {cmd} ":
        return "an elided command (`...`: the one above with other flags)"
    return next((why for p, why in NOT_RUN.items() if cmd.startswith(p)), None)


COMMANDS = [c for c in readme_commands() if not _not_run(c)]


def test_every_readme_command_is_run_or_said_why_not():
    cmds = readme_commands()
    assert len(COMMANDS) >= 20
    assert all(c.startswith("featsel ") for c in COMMANDS), COMMANDS
    skipped = [c for c in cmds if _not_run(c)]
    assert len(skipped) + len(COMMANDS) == len(cmds)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    d = tmp_path_factory.mktemp("readme")
    # the README's `--featurizers candidates.yaml` is the user's own list
    (d / "candidates.yaml").write_text("- identity\n- pca:dim=16\n")
    return d


def localise(cmd: str, ws: Path) -> list[str]:
    """The command's argv (without `featsel`) with its outputs moved into ``ws``, then the
    size flags."""
    cmd = re.sub(r"(?<![\w/.-])(out|runs)/", lambda m: f"{ws}/{m.group(1)}/", cmd)
    argv = shlex.split(cmd)[1:]
    argv = [str(ws / a) if a in ("grid.png", "candidates.yaml") else a for a in argv]
    sub = argv[0]
    extra = list(SMALL.get(sub, []))
    if sub == "train" and "--resume" in argv:
        extra[1] = "3"  # continue the 2-step run by one step
    if sub == "pretrain":
        if argv[1] == "scvi":
            extra = ["--epochs", "1", "--quiet"]
        elif argv[1] == "mae":
            extra += ["--set", "finetune_steps=1"]
    return argv + extra


@pytest.mark.parametrize("cmd", COMMANDS)
def test_readme_command_runs(cmd, workspace, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # configs/ paths are relative to the repository root
    argv = localise(cmd, workspace)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 0, f"{cmd}\n{err[-2000:]}"
    assert "Traceback" not in err


# the README's Python examples that need neither data files nor training, run as written
PY_BLOCKS = ("import torch\nfrom featsel.ot import", "from featsel.confirmation import",
             "from featsel.halving import")


@pytest.mark.parametrize("head", PY_BLOCKS)
def test_readme_python_example_runs(head, monkeypatch, tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    (block,) = [b for b in blocks if b.startswith(head)]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, f"README.md ({head.splitlines()[-1]} ...)", "exec"), {})
