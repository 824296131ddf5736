"""A training started with SIGINT ignored (a background job of a script: `cnnlab train ... &`
in a non-interactive shell) keeps it ignored in training as in its start-up, as Python keeps
a SIGINT the process inherited as ignored: start-up ignored it and training honoured it (the
run stopped with a checkpoint). SIGTERM still stops it so. Truth: the process's own
disposition (signal.getsignal at start) and the run's files at its end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tiny_nets import tiny_spec

pytestmark = pytest.mark.slow  # subprocess trainings

CLI = [sys.executable, "-c", "import sys; from cnnlab.cli import main; sys.exit(main())"]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a non-interactive shell does for `&`


def _start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(10)))
    out = tmp_path / "run"
    args = [str(spec), "--data", "digits", "--out", str(out), "--epochs", "3"]
    args += ["--batch-size", "8", "--checkpoint-seconds", "0", "--no-tta", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [*CLI, "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_ignore_sigint,
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.safetensors").is_file():  # training has begun
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    return child, out


def test_an_ignored_sigint_stays_ignored_in_training(tmp_path):
    child, out = _start(tmp_path)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    assert (out / "model.safetensors").is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows if "epoch" in row][-1] == 3


def test_sigterm_still_stops_it_with_a_checkpoint(tmp_path):
    child, out = _start(tmp_path)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=300)
    assert child.returncode != 0 and "--resume" in err, err
    assert not (out / "model.safetensors").is_file()
