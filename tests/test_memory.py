"""featsel.memory: glibc keeps freed tensors for the next step (issue 14: the system time)."""

import os
import subprocess
import sys

import pytest

CODE = "from featsel.memory import keep_freed_memory as k; print(k(), k())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt only")
def test_applied_once_unless_the_user_tuned_malloc():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["True", "True"], out.stderr
    env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr
