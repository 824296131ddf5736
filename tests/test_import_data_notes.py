"""Import says what it did to the --data images, as train does: a folder of mixed sizes
resized to --input, a file that does not read skipped. Its result, config.json and output
said nothing of it (train's name each file in config.json's `skipped`/`converted` and print
'converted N images to the model's input (...)'). And a --mean or --std of the wrong length
is told how many values to give, with an example. Truth: the folder as written here (which
files have which size) and `load_splits`' own record of the same folder."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import load_splits
from cnnlab.errors import DataError
from cnnlab.train import checkpoint
from cnnlab.train.importing import import_run
from cnnlab.train.source import parse_model_ref

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CODE = textwrap.dedent(
    """
    from torch import nn

    def make():
        return nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
        )
    """
)
SIZES = [(18, 21), (16, 16), (10, 12), (16, 16), (20, 9)]  # 3 of 5 not 16×16


@pytest.fixture
def made(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "imgs"
    for name in ("cat", "dog"):
        (data / name).mkdir(parents=True)
        for i, (h, w) in enumerate(SIZES * 2):
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(data / name / f"{i}.png")
    (data / "cat" / "broken.png").write_bytes(b"not a png")
    code = tmp_path / "f.py"
    code.write_text(CODE)
    weights = tmp_path / "w.safetensors"
    checkpoint.save_weights(weights, parse_model_ref(f"{code}:make").build().state_dict())
    return data, code, weights


def test_result_and_config_name_the_files_skipped_and_converted(made, tmp_path):
    data, code, weights = made
    out = tmp_path / "run"
    result = import_run(
        parse_model_ref(f"{code}:make"), weights, out, data, input_shape=(3, 16, 16)
    )
    train, test = load_splits(data, channels=3, size=(16, 16))
    resized = sum((h, w) != (16, 16) for h, w in SIZES) * 4  # 20 images, 2 classes
    assert len(result["converted"]) == resized == len(train.converted) + len(test.converted)
    assert all("16x16" in why or "16×16" in why for _, why in result["converted"]), result
    assert [path for path, _ in result["skipped"]] == [str(data / "cat" / "broken.png")]
    config = json.loads((out / "config.json").read_text())
    assert config["converted"] == result["converted"] and config["skipped"] == result["skipped"]


def test_the_command_says_it_as_train_does(made, tmp_path, capsys):
    data, code, weights = made
    argv = ["import", "--model", f"{code}:make", "--weights", str(weights), "--data", str(data)]
    assert main([*argv, "--input", "3,16,16", "--out", str(tmp_path / "run")]) == 0
    said = capsys.readouterr().out
    assert f"skipped {data / 'cat' / 'broken.png'}: " in said, said
    assert "converted 12 images to the model's input (" in said, said
    assert main([*argv, "--input", "3,16,16", "--out", str(tmp_path / "j"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["converted"] == 12


@pytest.mark.parametrize(
    ("option", "given", "said"),
    [
        ("--mean", "0.5", "--mean has 1 value for 3-channel images: give 3, as --mean "
         "0.485,0.456,0.406"),
        ("--std", "0.2,0.2", "--std has 2 values for 3-channel images: give 3, as --std "
         "0.229,0.224,0.225"),
    ],
)  # fmt: skip
def test_a_wrong_count_of_values_is_told_how_many_with_an_example(
    made, tmp_path, option, given, said
):
    data, code, weights = made
    with pytest.raises(DataError) as got:
        import_run(
            parse_model_ref(f"{code}:make"), weights, tmp_path / "run", data,
            input_shape=(3, 16, 16), **{option[2:]: [float(v) for v in given.split(",")]},
        )  # fmt: skip
    assert str(got.value) == said
    typed = said.split(", as ")[1].split()  # the example typed back
    argv = ["import", "--model", f"{code}:make", "--weights", str(weights), "--data", str(data)]
    assert main([*argv, "--input", "3,16,16", *typed, "--out", str(tmp_path / "again")]) == 0
