"""`cnnlab explain`, `visualize` and `probe` on a run directory written here in the run
format (spec.yaml, config.json, model.safetensors), from the command's entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab import build, load_spec
from cnnlab.cli import main
from cnnlab.train.checkpoint import save_weights

SPEC = {
    "name": "tiny",
    "input": [1, 28, 28],
    "layers": [
        {"conv": {"filters": 8, "kernel": 3, "padding": "same"}},
        "relu",
        {"maxpool": 2},
        {"conv": {"filters": 8, "kernel": 3, "padding": "same"}},
        "relu",
        "gap",
        {"linear": 10},
    ],
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    spec = load_spec(SPEC)
    torch.manual_seed(0)
    model = build(spec)
    (path / "spec.yaml").write_text(spec.to_yaml())
    classes = [f"class{i}" for i in range(10)]
    config = {"data": "fashion-mnist", "classes": classes, "mean": [0.286], "std": [0.353],
              "input_shape": [1, 28, 28]}  # fmt: skip
    (path / "config.json").write_text(json.dumps(config))
    save_weights(path / "model.safetensors", model.state_dict())
    return path


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "shirt.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "saliency", "smoothgrad"])
def test_explain_writes_heatmaps_and_prints_top_k(run_dir, image_file, tmp_path, capsys, method):
    code = main(["explain", str(run_dir), str(image_file), "--method", method,
                 "--out", str(tmp_path), "--top-k", "2"])  # fmt: skip
    assert code == 0
    line = capsys.readouterr().out
    assert line.count("%") == 2 and "class" in line
    png = Image.open(tmp_path / f"shirt_{method}.png")
    assert png.size == (224, 224) and png.mode == "RGB"


def test_visualize_filters_maps_actmax(run_dir, image_file, tmp_path, capsys):
    assert main(["visualize", str(run_dir), "--filters", "--out", str(tmp_path)]) == 0
    assert Image.open(tmp_path / "filters.png").size[0] > 8
    assert main(["visualize", str(run_dir), "--maps", str(image_file), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "maps_0.png").exists() and (tmp_path / "maps_4.png").exists()
    code = main(["visualize", str(run_dir), "--actmax", "4", "--channels", "3", "--steps", "5",
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 0 and (tmp_path / "actmax_4.png").exists()
    assert "channel 2:" in capsys.readouterr().out


def test_probe_prints_a_row_per_layer(run_dir, capsys):
    code = main(["probe", str(run_dir), "--train", "300", "--test", "100", "--epochs", "5"])
    assert code == 0
    out = capsys.readouterr().out
    assert "raw pixels" in out and "Conv2d" in out and out.count("%") == 8  # input + 7 layers


def test_bad_input_exits_2(run_dir, image_file, tmp_path, capsys):
    assert main(["explain", str(run_dir), str(image_file), "--layer", "9"]) == 2
    assert "valid layer names" in capsys.readouterr().err
    assert main(["explain", str(run_dir), str(image_file), "--layer", "6"]) == 2
    assert "not a spatial map" in capsys.readouterr().err
    assert main(["explain", str(run_dir), str(image_file), "--target", "10"]) == 2
    assert main(["explain", str(run_dir), str(tmp_path / "none.png")]) == 2
    assert main(["visualize", str(tmp_path), "--filters"]) == 2


@pytest.mark.parametrize(
    ("command", "flag"),
    [("explain", "--top-k"), ("visualize", "--channels"), ("visualize", "--steps")],
)
@pytest.mark.parametrize("value", ["-2", "0", "two"])
def test_counts_below_one_are_refused_by_the_parser(
    run_dir, image_file, tmp_path, capsys, command, flag, value
):
    """--top-k -2 was a traceback, --top-k 0 an empty list, --channels 0 "channels must lie in
    0..7" (true, and no help): argparse refuses them, exit 2, naming the flag."""
    what = [str(image_file)] if command == "explain" else ["--actmax", "4"]
    with pytest.raises(SystemExit) as exit_:
        main([command, str(run_dir), *what, f"{flag}={value}", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "whole number >= 1" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["explain", "visualize"])
def test_an_output_path_that_cannot_be_a_directory_is_one_line(
    run_dir, image_file, tmp_path, capsys, command
):
    """--out under a file (/dev/null/x, or here a regular file) was a NotADirectoryError."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    what = [str(image_file)] if command == "explain" else ["--filters"]
    assert main([command, str(run_dir), *what, "--out", str(blocker / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cnnlab {command}: error: cannot ") and str(blocker / "x") in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("method", ["saliency", "smoothgrad"])
def test_layer_with_a_pixel_method_is_refused(run_dir, image_file, tmp_path, capsys, method):
    """--layer was silently ignored by the methods that read no layer."""
    code = main(["explain", str(run_dir), str(image_file), "--method", method,
                 "--layer", "3", "--out", str(tmp_path)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "--layer" in err and method in err and "gradcam" in err
    assert not list(tmp_path.iterdir())  # nothing written
