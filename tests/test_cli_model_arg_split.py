"""`--model-arg width 16` (the pair in two words) is named as such by summary, train and
import: the 16 was read as a spec file ('give the spec file '16' or --model, not both', 'give
a spec or preset, or --model') or as an unrecognized argument."""

from __future__ import annotations

import pytest

from cnnlab.cli import main


def run(argv: list[str]) -> int:
    """The exit code, whether main returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


NET = "from torch import nn\n\ndef make(width=4):\n    return nn.Conv2d(1, width, 3)\n"


@pytest.mark.parametrize(
    "command",
    [
        ["summary", "--input", "1,8,8"],
        ["train", "--data", "digits", "--out", "RUN"],
        ["import", "--weights", "w.safetensors", "--data", "digits", "--out", "RUN"],
    ],
)
def test_a_pair_in_two_words_is_told_to_join_them(tmp_path, capsys, command):
    net = tmp_path / "net.py"
    net.write_text(NET)
    argv = [w.replace("RUN", str(tmp_path / "run")) for w in command]
    argv[1:1] = ["--model", f"{net}:make", "--model-arg", "width", "16"]
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "--model-arg 'width' is not name=value" in err, err
    assert "--model-arg width=16" in err, err
    assert not (tmp_path / "run").exists()
