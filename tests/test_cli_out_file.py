"""--out naming a file (or a path through one) is told so: explain said 'cannot create output
directory afile: File exists', visualize 'cannot write afile/filters.png: File exists', of a
file that does not exist."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.train import TrainConfig, train

TINY = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [{"conv": {"filters": 4, "kernel": 3, "padding": 1}}, "relu", "gap", {"linear": 10}],
}


@pytest.fixture(scope="module")
def run_and_file(tmp_path_factory):
    where = tmp_path_factory.mktemp("outfile")
    train(TINY, "digits", where / "run", TrainConfig(epochs=1, precision="fp32"))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(where / "a.png")
    (where / "afile").write_text("not a directory")
    return where


@pytest.mark.parametrize(
    "command",
    [
        ["explain", "{run}", "{png}", "--out", "{out}"],
        ["visualize", "{run}", "--filters", "--out", "{out}"],
        ["visualize", "{run}", "--maps", "{png}", "--out", "{out}"],
        ["visualize", "{run}", "--actmax", "0", "--steps", "1", "--out", "{out}"],
    ],
)
@pytest.mark.parametrize("out", ["afile", "afile/sub"])
def test_an_out_through_a_file_is_named_as_the_file(run_and_file, command, out, capsys):
    where = run_and_file
    names = {"run": where / "run", "png": where / "a.png", "out": where / out}
    assert main([part.format(**names) for part in command]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{where / 'afile'} is a file, not a directory; give --out a directory "
                        "(made where missing)")  # fmt: skip
    assert len(err.splitlines()) == 1 and "File exists" not in err and str(where / out) in err
