"""The new run a mismatch message advises (weights that no longer fit the model's code) is
made on the images the run's model took: a run trained with --input C,H,W on a folder of
mixed-size images was told `cnnlab train --model REF --data DIR --out NEW_RUN`, which, typed
back, fails with '74×67 but earlier images are 90×108'. Each advice is typed back here and
must make a run; truth: the command itself."""

from __future__ import annotations

import re
import shlex
import textwrap

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.train import TrainConfig, checkpoint, train
from cnnlab.train.source import ACCEPT_CHANGED_ENV, parse_model_ref

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CODE = textwrap.dedent(
    """
    from torch import nn

    def make(width=4):
        return nn.Sequential(
            nn.Conv2d(3, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(width, 2),
        )
    """
)
QUICK = ["--epochs", "1", "--batch-size", "4", "--quiet"]  # speed only: not the data's shape


def _folder(root):
    """Two classes of RGB images of four sizes: no size of their own."""
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i, (h, w) in enumerate([(18, 21), (15, 13), (10, 12), (16, 16)] * 2):
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def _advice(err: str, command: str) -> list[str]:
    found = re.search(rf"cnnlab {command} .*? --out NEW_RUN", err)
    assert found, err
    return shlex.split(found.group(0))[2:]


def _typed_back(words: list[str], tmp_path, **put) -> list[str]:
    put = {"NEW_RUN": str(tmp_path / "new"), **put}
    return [put.get(word, word) for word in words]


def test_a_code_run_trained_with_input_is_told_it_again(tmp_path, capsys, monkeypatch):
    data, code, out = _folder(tmp_path / "imgs"), tmp_path / "f.py", tmp_path / "run"
    code.write_text(CODE)
    argv = ["train", "--model", f"{code}:make", "--input", "3,16,16", "--data", str(data)]
    assert main([*argv, *QUICK, "--out", str(out)]) == 0
    code.write_text(CODE.replace("width=4", "width=5"))
    capsys.readouterr()
    assert main(["eval", str(out)]) == 2
    assert f"set {ACCEPT_CHANGED_ENV}=1" in capsys.readouterr().err  # its advice, typed back:
    monkeypatch.setenv(ACCEPT_CHANGED_ENV, "1")
    assert main(["eval", str(out)]) == 2
    words = _advice(capsys.readouterr().err, "train")
    assert words[words.index("--input") + 1] == "3,16,16"
    assert main(["train", *_typed_back(words, tmp_path), *QUICK]) == 0, capsys.readouterr().err


def test_an_imported_run_is_told_its_input_again(tmp_path, capsys, monkeypatch):
    data, code, out = _folder(tmp_path / "imgs"), tmp_path / "f.py", tmp_path / "run"
    code.write_text(CODE)
    weights = tmp_path / "w.safetensors"
    checkpoint.save_weights(weights, parse_model_ref(f"{code}:make").build().state_dict())
    argv = ["import", "--model", f"{code}:make", "--weights", str(weights), "--data", str(data)]
    assert main([*argv, "--input", "3,16,16", "--out", str(out)]) == 0
    code.write_text(CODE.replace("width=4", "width=5"))
    monkeypatch.setenv(ACCEPT_CHANGED_ENV, "1")
    capsys.readouterr()
    assert main(["eval", str(out)]) == 2
    words = _advice(capsys.readouterr().err, "import")
    new_weights = tmp_path / "w5.safetensors"  # weights that fit the code as it is now
    checkpoint.save_weights(new_weights, parse_model_ref(f"{code}:make").build().state_dict())
    assert main(["import", *_typed_back(words, tmp_path, FILE=str(new_weights))]) == 0


def test_a_python_object_run_is_told_the_input_of_its_import(tmp_path, capsys):
    data, code, out = _folder(tmp_path / "imgs"), tmp_path / "f.py", tmp_path / "run"
    code.write_text(CODE)
    model = parse_model_ref(f"{code}:make").build()
    images = load_dataset(str(data), "train", channels=3, size=(16, 16))
    train(model, images, out, TrainConfig(epochs=1, batch_size=4, precision="fp32"))
    capsys.readouterr()
    assert main(["eval", str(out)]) == 2
    words = _advice(capsys.readouterr().err, "import")
    assert words[words.index("--input") + 1] == "3,16,16"
    typed = _typed_back(words, tmp_path, **{"file.py:factory": f"{code}:make"})
    assert main(["import", *typed]) == 0, capsys.readouterr().err
