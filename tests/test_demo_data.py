"""`cnnlab demo --data` takes the sets the `fast` preset's 10-way head fits; another one is
refused before training with the way to train it (the error came after the first lines and
advised --batch-size and `linear: 4`, which the demo does not take)."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab import load_spec
from cnnlab.cli import main
from cnnlab.data import load_dataset


def test_fast_has_ten_outputs_and_shapes_four_classes():
    assert load_spec("fast").shapes[-1] == (10,)
    assert len(load_dataset("shapes", "test").classes) == 4


@pytest.mark.parametrize("data", ["shapes", "folder"])
def test_another_set_is_refused_before_training(tmp_path, capsys, data):
    if data == "folder":
        for cls in ("cat", "dog"):
            (tmp_path / "imgs" / cls).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "imgs" / cls / "0.png")
        data = str(tmp_path / "imgs")
    out = tmp_path / "demo"
    assert main(["demo", "--data", data, "--epochs", "1", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "training" not in captured.out and not out.exists()
    assert len(captured.err.splitlines()) == 1
    assert "fast.yaml" in captured.err and "cnnlab train SPEC --data DIR" in captured.err
    # the file to copy where cnnlab is installed, not a source checkout's src/ (relative)
    named = Path(re.search(r"copy (\S+fast\.yaml),", captured.err).group(1))
    assert named.is_absolute() and named.is_file() and load_spec(str(named)).name == "fast"
