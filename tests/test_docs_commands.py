"""Every `cnnlab` command the documentation shows is one the CLI accepts as written: each
command line of a code block, and each code span with an option, parses with the command's
own argparse (options, their values and choices, required arguments), and every name the
concept map gives a function column is the function or class, not a module of that name."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from cnnlab.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *(ROOT / "docs" / n for n in ("concepts.md", "spec.md", "reliability.md", "recipes.md")),
]
BLOCK = re.compile(r"```\w*\n(.*?)```", re.S)
# A command line of a block: `cnnlab ...`, `$ cnnlab ...` (a transcript), `.venv/bin/cnnlab ...`
# (what make echoes) or torchrun's `-m cnnlab.cli ...`; a `#` comment and `;` end it.
LINE = re.compile(r"^(?:\$ )?(?:\.venv/bin/)?(?:cnnlab|torchrun (?:\S+ )*?-m cnnlab\.cli) (\w.*)$")
SPAN = re.compile(r"`cnnlab (\w+(?: [^`]*)?)`")


def _block_commands(text: str) -> list[str]:
    found = []
    # Markdown's other code block, lines indented 4 spaces (docs/recipes.md writes its commands so)
    indented = "\n".join(re.findall(r"^ {4}(.*)$", BLOCK.sub("", text), re.M))
    for body in [*BLOCK.findall(text), indented]:
        for line in body.splitlines():
            for part in line.split(";"):
                match = LINE.match(re.split(r"\s#", part)[0].strip())
                found += [match.group(1)] if match else []
    return found


def _span_commands(text: str) -> list[str]:
    """Code spans that show a command with options (`cnnlab demo --epochs 1`); a span naming
    a command alone (`cnnlab eval`) is prose about it."""
    return [" ".join(s.split()) for s in SPAN.findall(text) if " --" in s]


def _refusal(command: str) -> str | None:
    """None if `cnnlab COMMAND` parses, else argparse's one-line error."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            _parser().parse_args(shlex.split(command))
    except SystemExit:
        return stderr.getvalue().strip()
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_a_doc_shows_parses(doc):
    """`cnnlab train --preset fast --lr 100` was shown as run, and train requires --out."""
    text = doc.read_text()
    commands = _block_commands(text) + _span_commands(text)
    assert commands, doc.name
    refused = {c: r for c in commands if (r := _refusal(c))}
    assert not refused, f"{doc.name}: {refused}"


def test_the_readme_shows_the_commands_it_is_about():
    """The scan itself: the README's blocks hold the tour's commands, the DDP line included."""
    shown = _block_commands((ROOT / "README.md").read_text())
    assert "train --preset fast --out runs/ddp" in shown
    assert "eval runs/mine" in shown and "report runs/mine" in shown  # after a `;`
    assert len(shown) >= 25, shown
    recipes = _block_commands((ROOT / "docs" / "recipes.md").read_text())
    assert (
        "train --preset fast --data fashion-mnist --epochs 18 --tta-shift 1 --out runs/fast94"
        in recipes
    )


def _attribute(dotted: str):
    """`cnnlab.explain.gradcam` as a user reaches it: attributes from `cnnlab` down, importing
    a submodule only where no attribute has the name."""
    import importlib

    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, name in enumerate(parts[1:], start=1):
        if not hasattr(obj, name):
            importlib.import_module(".".join(parts[: i + 1]))
        obj = getattr(obj, name)
    return obj


def test_concept_map_functions_are_functions():
    """A name in the function column is a function or class: `cnnlab.explain.gradcam` also
    names a module, which would stand in for the function were the function gone."""
    import inspect

    text = (ROOT / "docs" / "concepts.md").read_text()
    rows = [r for r in text.splitlines() if r.startswith("| ") and not r.startswith("| concept")]
    names = {n for r in rows for n in re.findall(r"`(cnnlab(?:\.\w+)+)`", r.split(" | ")[1])}
    assert len(names) > 20, names
    for name in sorted(names):
        obj = _attribute(name)
        assert inspect.isfunction(obj) or inspect.isclass(obj), f"{name} is {obj!r}"


def test_concept_map_spec_kinds_exist():
    """Each spec kind the concept map names (`spec kinds `maxpool`, `avgpool``) is a kind of
    the spec language, and its spec example (`spec `conv: {stride: 2}``) loads."""
    from cnnlab.design.kinds import KINDS
    from cnnlab.design.spec import load_spec

    text = (ROOT / "docs" / "concepts.md").read_text()
    named = {k for group in re.findall(r"spec kinds? ((?:`\w+`(?:, )?)+)", text)
             for k in re.findall(r"`(\w+)`", group)}  # fmt: skip
    assert len(named) >= 8 and named <= set(KINDS), named - set(KINDS)
    for layer in re.findall(r"spec `(\w+: \{[^`]*\})`", text):
        load_spec(f"input: [1, 8, 8]\nlayers:\n  - {layer}\n  - gap\n  - linear: 2\n")


def test_no_help_states_a_default_of_none():
    """`cnnlab train --help` said `--flip ... (default None)` after saying the default is on
    except for digits: a default decided per data set is said in words, not as None."""
    commands = _parser()._subparsers._group_actions[0].choices
    for name, command in commands.items():
        text = " ".join(command.format_help().split())
        assert "(default None)" not in text, name


DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not DEBIAN_FMNIST.is_dir(), reason="Debian's dataset-fashion-mnist absent")
def test_readme_data_output_is_what_the_command_prints(capsys, monkeypatch):
    """The README's `cnnlab data fashion-mnist` table: sizes, mean/std, counts (80 columns, as
    piped output is drawn; the README's lines carry no trailing spaces)."""
    from cnnlab.cli import main

    monkeypatch.setenv("COLUMNS", "80")
    assert main(["data", "fashion-mnist", "--root", str(DEBIAN_FMNIST)]) == 0
    printed = [line.rstrip() for line in capsys.readouterr().out.splitlines()]
    text = (ROOT / "README.md").read_text()
    start = text.index("$ cnnlab data fashion-mnist\n") + len("$ cnnlab data fashion-mnist\n")
    assert printed == text[start : text.index("```", start)].rstrip("\n").splitlines()


def test_readme_compare_mlp_figures_are_what_the_command_prints(capsys):
    """`--compare-mlp 1000` on fmnist-tf: the README's 785,000 parameters at 0.2× the model,
    and 150,529,000 for a 224×224×3 image."""
    from cnnlab.cli import main

    text = " ".join((ROOT / "README.md").read_text().split())
    said = re.search(r"\(here 784 values into 1,000 units: ([\d,]+) parameters, ([\d.]+)×", text)
    big = re.search(r"a 224×224×3 image into 1,000 units: ([\d,]+)\)", text)
    assert said and big, "README no longer quotes --compare-mlp's figures"
    assert main(["summary", "fmnist-tf", "--compare-mlp", "1000"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert f"has {said.group(1)} parameters (§1) — {said.group(2)}× this whole model's" in printed
    assert main(["summary", "fmnist-tf", "--input", "3,224,224", "--compare-mlp", "1000"]) == 0
    assert f"has {big.group(1)} parameters" in " ".join(capsys.readouterr().out.split())
