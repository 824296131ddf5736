"""`cnnlab --help`, `cnnlab COMMAND --help` and a usage error answer without importing torch
(nor NumPy, PIL, matplotlib, FastAPI): building the parser imported every command module, and
several imported torch and the library at the top, so a new user's first command took about
4 s (2.6 s CPU) to print its help. Each case runs in a fresh interpreter, as the command does;
the modules a step imported are named with the step, so a failure says which command's help
brought torch back."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ("torch", "numpy", "PIL", "matplotlib", "fastapi")

# Runs in a fresh interpreter: each step through the dispatcher (`main`, as `cnnlab` runs it),
# then the heavy modules imported so far; one JSON object on the last line of stdout.
CHILD = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from cnnlab.cli import _parser, main

    heavy = {heavy!r}
    loaded = lambda: sorted(m for m in heavy if m in sys.modules)
    _parser()
    seen = {{"building the parser": loaded()}}
    commands = sorted(_parser()._subparsers._group_actions[0].choices)
    steps = [["--help"], *([c, "--help"] for c in commands), ["train", "--no-such-option"],
             ["no-such-command"], ["explain"]]
    for argv in steps:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as stop:
                code = stop.code
        seen[" ".join(argv)] = loaded()
        seen[" ".join(argv) + " -> exit"] = [code, err.getvalue().count("\\n")]
    print(json.dumps({{"seen": seen, "commands": commands}}))
    """
).format(heavy=HEAVY)


def _startup() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_and_usage_errors_import_no_torch():
    found = _startup()
    seen = found["seen"]
    assert {"train", "explain", "summary", "data", "predict", "demo"} <= set(found["commands"])
    imported = {step: mods for step, mods in seen.items() if "exit" not in step and mods}
    assert not imported, f"steps that imported heavy modules: {imported}"
    assert "torch" not in seen["train --help"]  # the case of the issue, spelled out
    for command in found["commands"]:
        assert seen[f"{command} --help -> exit"][0] == 0, command
    assert seen["--help -> exit"][0] == 0
    for error in ("train --no-such-option", "no-such-command", "explain"):
        code, lines = seen[f"{error} -> exit"]
        assert (code, lines) == (2, 1), (error, code, lines)  # one line, exit 2, as before


def test_train_help_still_lists_the_presets_and_every_config_option():
    """The options read in the torch-free way are the ones the library has: every preset and
    every TrainConfig field (the help is built from the dataclass, not from a copy)."""
    import dataclasses

    from cnnlab.cli import _parser
    from cnnlab.design.spec import preset_names
    from cnnlab.train import TrainConfig

    train = _parser()._subparsers._group_actions[0].choices["train"]
    text = train.format_help()
    for name in preset_names():
        assert name in text
    flags = {o for a in train._actions for o in a.option_strings}
    for field in dataclasses.fields(TrainConfig):
        assert "--" + field.name.replace("_", "-") in flags, field.name


def test_the_preset_names_of_the_package_import_no_torch():
    """`cnnlab.preset_names()` reads file names; it loaded `cnnlab.design.spec` (torch)."""
    code = "import sys, cnnlab; print('fast' in cnnlab.preset_names(), 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "False"], done.stderr[-2000:]
