"""Which rank torchrun names as the cause of a failed distributed run.

torchrun's end summary names as the 'Root Cause' the failure with the earliest time (from
the rank's error file, else when torchrun saw the rank exit). The truth: the rank made to
fail (rank 0's config.json write fails as on a full disk) and its own stderr line; the
other rank only heard of it. Two CPU ranks of `cnnlab train` on digits under the real
torchrun (~10 s)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tiny_nets import DDP_SPEC

NO_SPACE = "No space left on device"
# `cnnlab train` under torchrun, rank 0's write of config.json failing as on a full disk
# (checkpoint._write_all: the seam every atomic write of the run directory goes through)
FAILING_RANK_0 = f"""\
import errno, os, sys
from pathlib import Path
from cnnlab.train import checkpoint
if os.environ["RANK"] == "0":
    real = checkpoint._write_all
    def write_all(file, data):
        if Path(file.name).name.startswith(".config.json.tmp-"):
            raise OSError(errno.ENOSPC, {NO_SPACE!r})
        real(file, data)
    checkpoint._write_all = write_all
from cnnlab.cli import entry
sys.argv[0] = "cnnlab"
entry()
"""


def _section(summary: str, title: str) -> str:
    """The part of torchrun's summary after `title` ('Failures:', 'Root Cause') up to the
    next rule of dashes or equals signs."""
    after = summary.split(title, 1)[1]
    return re.split(r"\n[-=]{20,}", after, maxsplit=1)[0]


def test_torchrun_names_the_rank_that_failed_as_the_root_cause(tmp_path):
    (tmp_path / "tiny.yaml").write_text(DDP_SPEC)
    (tmp_path / "failing.py").write_text(FAILING_RANK_0)
    env = {**os.environ, "CNNLAB_DDP_TIMEOUT": "30", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", "--log-dir", "logs", "--redirects", "3", "failing.py"]
    command += ["train", "tiny.yaml", "--data", "digits", "--epochs", "1", "--quiet"]
    command += ["--out", "run"]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    summary = done.stderr
    assert done.returncode == 1 and "Root Cause" in summary, summary[-3000:]
    said = {
        int(path.parent.name): path.read_text().strip()
        for path in (tmp_path / "logs").glob("*/attempt_0/*/stderr.log")
    }
    words = f"could not write run/config.json: {NO_SPACE}"
    assert said[0].startswith(f"cnnlab train: error: {words}"), said
    assert said[1].startswith(f"cnnlab train: rank 1 of 2: rank 0 failed: {words}"), said
    root = _section(summary, "Root Cause")
    assert re.search(r"rank\s*: 0 \(local_rank: 0\)", root), summary[-3000:]
    assert re.search(r"exitcode\s*: 2 ", root), root
    assert said[0].removeprefix("cnnlab train: error: ") in root  # its own line, whole
    other = _section(summary, "Failures:")  # stopped by torchrun once rank 0 had exited
    assert re.search(r"rank\s*: 1 \(local_rank: 1\)", other), other
    assert re.search(r"exitcode\s*: -15 ", other), other
