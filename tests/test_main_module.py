"""`python -m cnnlab` runs the `cnnlab` command (the console script's entry), as
`python -m cnnlab.cli` does; it failed with "No module named cnnlab.__main__". Its help, like the
script's, answers without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# A fresh interpreter runs `python -m cnnlab ARGS` (runpy, as -m does) and reports the exit
# code and whether torch was imported; one JSON line on stdout after the command's own output.
CHILD = textwrap.dedent(
    """
    import json, runpy, sys
    sys.argv = ["cnnlab", *sys.argv[1:]]
    try:
        runpy.run_module("cnnlab", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = stop.code
    print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
    """
)


def _run(*args: str) -> tuple[dict, str, str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip(), done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1]), done.stderr


def test_python_m_cnnlab_help_is_the_command_and_torch_free():
    found, out, err = _run("--help")
    assert found == {"code": 0, "torch": False}, err[-2000:]
    assert out.startswith("usage: cnnlab "), out[:200]
    assert "train" in out and "explain" in out


def test_python_m_cnnlab_usage_error_is_the_commands():
    found, _, err = _run("no-such-command")
    assert found["code"] == 2
    assert err.startswith("cnnlab: error:") and len(err.strip().splitlines()) == 1, err


def test_python_m_cnnlab_runs_in_a_shell():
    done = subprocess.run(
        [sys.executable, "-m", "cnnlab", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: cnnlab ")
