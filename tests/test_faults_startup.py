"""Ctrl-C or SIGTERM while `cnnlab` starts: one line and exit 130, never a KeyboardInterrupt
traceback nor a silent death by signal (143). The signal is made to land at a chosen point of
the start-up, deterministically: a sitecustomize.py on PYTHONPATH sends it to the process
itself when a given module is first imported (torch: the seconds of the heavy imports; a
command module: while the dispatcher builds its parser)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

HOOK = textwrap.dedent(
    """
    import importlib.abc, os, signal, sys

    class _SignalOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == os.environ["CNNLAB_TEST_MODULE"]:
                sys.meta_path.remove(self)
                os.kill(os.getpid(), getattr(signal, os.environ["CNNLAB_TEST_SIGNAL"]))
            return None

    sys.meta_path.insert(0, _SignalOnImport())
    """
)
POINTS = [  # (module whose import the signal lands in, signal)
    ("torch", "SIGINT"),
    ("torch", "SIGTERM"),
    ("cnnlab.cli.train", "SIGINT"),
    ("cnnlab.cli.train", "SIGTERM"),
]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("module", "signal_name"), POINTS, ids=lambda p: p)
def test_a_signal_during_start_up_is_one_line_and_exit_130(module, signal_name, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(HOOK)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "CNNLAB_TEST_MODULE": module,
        "CNNLAB_TEST_SIGNAL": signal_name,
    }
    cmd = [sys.executable, "-m", "cnnlab.cli", "train", "--preset", "fast", "--data", "digits",
           "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    # a shell starting a job in the background (`make test &`) leaves SIGINT ignored, which
    # the child would inherit: Python then installs no handler and the signal does nothing
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=120, preexec_fn=_default_sigint
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 130, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1 and "interrupted" in lines[0], done.stderr[-2000:]
    assert not (tmp_path / "run").exists()  # stopped before anything was written
