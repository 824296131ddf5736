"""The help texts as a new user reads them. Truth: the parser's own list of commands and
options, and what the code reading each option does."""

from __future__ import annotations

import argparse
import re

import pytest

from cnnlab.cli import _parser, main


def commands() -> dict:
    return _parser()._subparsers._group_actions[0].choices


def help_of(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("columns", [60, 80, 100, 160])
def test_every_command_has_its_help_on_its_own_line(columns, capsys, monkeypatch):
    """`cnnlab --help` at any terminal width: each command's name is followed on its line by
    its help (argparse put visualize's on the next line, its name measured two columns
    short), and all helps start in one column."""
    monkeypatch.setenv("COLUMNS", str(columns))
    lines = help_of([], capsys).splitlines()
    starts = set()
    for name in commands():
        line = next((x for x in lines if re.match(rf"    {re.escape(name)}\b", x)), None)
        assert line is not None, name
        match = re.match(rf"    {re.escape(name)}( +)(\S)", line)
        assert match, f"{name}: its help is not on its line: {line!r}"
        starts.add(match.start(2))
    assert len(starts) == 1


def defaults(command: str) -> list[tuple[str, object, str]]:
    """(option, parser default, help) of each option of `command` with a default to say."""
    unsaid = (None, False, [], argparse.SUPPRESS)  # not given is nothing, or --help's own
    return [(a.option_strings[-1], a.default, a.help or "") for a in commands()[command]._actions
            if a.option_strings and a.default not in unsaid]  # fmt: skip


def said(value: object, text: str) -> bool:
    """Whether `text` says `value` as its default: 'default' and the value (60.0 as 60)."""
    forms = {str(value)}
    if isinstance(value, float) and value.is_integer():
        forms.add(str(int(value)))
    return "default" in text and any(re.search(rf"(?<![\w.]){re.escape(f)}(?![\w])", text)
                                     for f in forms)  # fmt: skip


@pytest.mark.parametrize("command", commands())
def test_every_option_says_its_default(command):
    """An option the code fills in when it is not given says so, with the value the parser
    holds: explain --top-k, visualize --out, probe's --train/--test/--epochs, diagnose
    --threshold and demo --out said none."""
    unsaid = [(option, value) for option, value, text in defaults(command)
              if not said(value, text)]  # fmt: skip
    assert unsaid == []


NETS = """
from torch import nn

def make_net():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(4, 10),
    )
"""


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """An imported digits run of random weights and an 8×8 image file x.png."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from cnnlab.train.importing import import_run
    from cnnlab.train.source import parse_model_ref

    tmp = tmp_path_factory.mktemp("help")
    (tmp / "nets.py").write_text(NETS)
    source = parse_model_ref(f"{tmp / 'nets.py'}:make_net", [])
    torch.manual_seed(0)
    save_file(source.build().state_dict(), tmp / "w.safetensors")
    import_run(source, tmp / "w.safetensors", tmp / "run", "digits")
    Image.new("L", (8, 8), 30).save(tmp / "x.png")
    return tmp


def pattern(name: str, **parts: str) -> str:
    """A file name the help writes in capitals (STEM-HASH_METHOD_...) as a regex, each
    capital word replaced by its part (HASH: six hex digits)."""
    regex = re.escape(name).replace("HASH", "[0-9a-f]{6}")
    for word, part in parts.items():
        regex = regex.replace(word, re.escape(part))
    return regex


def test_explain_and_visualize_write_the_files_their_help_names(imported):
    """The PNG names explain's and visualize's help give are the files they write."""
    run, image = str(imported / "run"), str(imported / "x.png")
    # the description as written: the help wraps it at hyphens (STEM-, HASH_...)
    named = re.search(r"named (\S+\.png)", commands()["explain"].description)[1]
    for method, layer in (("saliency", "input"), ("gradcam", "0")):
        out = imported / f"explain-{method}"
        argv = ["explain", run, image, "--method", method, "--target", "3", "--out", str(out)]
        assert main([*argv, *(["--layer", "0"] if method == "gradcam" else [])]) == 0
        files = [p.name for p in out.iterdir()]
        regex = pattern(named, STEM="x", METHOD=method, LAYER=layer, K="3")
        assert len(files) == 1 and re.fullmatch(regex, files[0]), (regex, files)

    text = commands()["visualize"].description
    for option, extra, name, layer in (
        ("--filters", [], "filters.png", ""),
        ("--maps", [image, "--layers", "1"], "maps_LAYER.png", "1"),
        ("--actmax", ["0", "--steps", "2", "--channels", "2"], "actmax_LAYER.png", "0"),
    ):
        assert f"{option}" in text and f" {name}" in text, name
        out = imported / f"visualize{option}"
        assert main(["visualize", run, option, *extra, "--out", str(out)]) == 0
        assert [p.name for p in out.iterdir()] == [name.replace("LAYER", layer)]
