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
from cnnlab.cli.explain import read_images
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
    (written,) = tmp_path.iterdir()
    assert written.name.startswith("shirt-") and f"_{method}_" in written.name
    assert str(written) in line
    png = Image.open(written)
    assert png.size == (224, 224) and png.mode == "RGB"


def _names(tmp_path) -> set[str]:
    return {p.name for p in tmp_path.iterdir()}


def test_heatmap_names_are_unique_and_say_layer_and_target(run_dir, tmp_path, capsys):
    """a/img000.png and b/img000.png went to one file; a second --target or --layer silently
    replaced the first map. Each setting and each source file now has its own file."""
    rng = np.random.default_rng(1)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        pixels = rng.integers(0, 255, (28, 28), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / folder / "img000.png")
    images = [str(tmp_path / "a" / "img000.png"), str(tmp_path / "b" / "img000.png")]
    out = tmp_path / "out"
    runs = [
        ["--target", "3"],
        ["--target", "5"],
        ["--target", "3", "--layer", "1"],
        ["--target", "3", "--method", "saliency"],
    ]
    for extra in runs:
        assert main(["explain", str(run_dir), *images, "--out", str(out), *extra]) == 0
    names = _names(out)
    assert len(names) == 2 * len(runs)  # nothing replaced
    default = "4"  # the last spatial layer of SPEC (its second relu), Grad-CAM's default
    for setting in (f"gradcam_{default}_class3", f"gradcam_{default}_class5",
                    "gradcam_1_class3", "saliency_input_class3"):  # fmt: skip
        assert len([n for n in names if n.startswith("img000-") and f"_{setting}" in n]) == 2
    capsys.readouterr()


def test_without_target_the_name_says_the_predicted_class(run_dir, image_file, tmp_path, capsys):
    from cnnlab.train.rundir import load_run

    assert main(["explain", str(run_dir), str(image_file), "--out", str(tmp_path)]) == 0
    run = load_run(run_dir)
    x = run.preprocess(read_images([str(image_file)], run.input_shape))
    with torch.no_grad():
        predicted = int(run.model(x).argmax(1))
    (written,) = tmp_path.iterdir()
    assert written.name.endswith(f"_class{predicted}.png")
    capsys.readouterr()


def _png16(path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels.astype(np.uint16)).save(path)  # mode I;16


@pytest.mark.parametrize("kind", ["rgba", "gray16", "palette"])
def test_explain_reads_an_image_as_predict_does(run_dir, tmp_path, capsys, kind):
    """explain stretched and converted images its own way (16-bit clipped to white, alpha
    dropped): the same PNG could get another top-1 class than `predict` gives it. At the
    run's size predict runs the file as it is: explain's probabilities must be the same."""
    from cnnlab.train.evaluate import predict
    from cnnlab.train.rundir import load_run

    rng = np.random.default_rng(2)
    path = tmp_path / f"{kind}.png"
    if kind == "rgba":
        Image.fromarray(rng.integers(0, 255, (28, 28, 4), dtype=np.uint8), "RGBA").save(path)
    elif kind == "gray16":
        _png16(path, rng.integers(0, 65535, (28, 28)))
    else:
        Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).convert("P").save(path)
    (expected,) = predict(load_run(run_dir), [path], top=1)
    assert main(["explain", str(run_dir), str(path), "--top-k", "1",
                 "--out", str(tmp_path / "out")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    ((name, p),) = expected.top
    assert f"{name} {p:.1%}" in printed


def _bomb_png(path, side: int = 20_000) -> None:
    """A PNG whose header says side × side pixels, with almost no data: a few hundred bytes
    that a reader which trusts the header would inflate to side² bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit gray
    data = zlib.compress(b"\0" * (side + 1))  # one row; the rest is missing
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("command", ["explain", "visualize"])
def test_a_decompression_bomb_is_one_line_exit_2(run_dir, tmp_path, capsys, command):
    """A 20,000² PNG crashed explain and visualize --maps with a traceback."""
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb)
    what = [str(bomb)] if command == "explain" else ["--maps", str(bomb)]
    assert main([command, str(run_dir), *what, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "bomb.png" in err and "pixels" in err


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


def test_bad_input_exits_2(run_dir, image_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --out, explain/, is made here
    assert main(["explain", str(run_dir), str(image_file), "--layer", "9"]) == 2
    assert "valid layer names" in capsys.readouterr().err
    assert main(["explain", str(run_dir), str(image_file), "--layer", "6"]) == 2
    assert "not a spatial map" in capsys.readouterr().err
    assert main(["explain", str(run_dir), str(image_file), "--target", "10"]) == 2
    assert main(["explain", str(run_dir), str(tmp_path / "none.png")]) == 2
    assert main(["visualize", str(tmp_path), "--filters"]) == 2
    assert main(["visualize", str(run_dir), "--maps", str(image_file), "--layers", "9"]) == 2
    # a refused command leaves no empty output directory (each refusal above made one)
    assert not (tmp_path / "explain").exists() and not (tmp_path / "visualize").exists()
    (tmp_path / "explain").mkdir()  # one the user made stays
    assert main(["explain", str(run_dir), str(image_file), "--layer", "9"]) == 2
    assert (tmp_path / "explain").is_dir()


@pytest.mark.parametrize(
    ("command", "flag"),
    [("explain", "--top-k"), ("visualize", "--channels"), ("visualize", "--steps")]
    # probe's were "linear probes got an empty training set", naming no option
    + [("probe", "--train"), ("probe", "--test"), ("probe", "--epochs")],
)
@pytest.mark.parametrize("value", ["-2", "0", "two"])
def test_counts_below_one_are_refused_by_the_parser(
    run_dir, image_file, tmp_path, capsys, command, flag, value
):
    """--top-k -2 was a traceback, --top-k 0 an empty list, --channels 0 "channels must lie in
    0..7" (true, and no help): argparse refuses them, exit 2, naming the flag."""
    what = {"explain": [str(image_file)], "visualize": ["--actmax", "4"]}.get(command, [])
    out = [] if command == "probe" else ["--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        main([command, str(run_dir), *what, f"{flag}={value}", *out])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    least = 2 if (command, flag) == ("probe", "--train") else 1  # see the test below
    assert flag in err and f"whole number >= {least}" in err and "Traceback" not in err


def test_a_probe_of_one_training_image_is_refused_by_the_parser(run_dir, capsys):
    """probe --train 1: the features are scaled by the training images' std, which torch makes
    NaN for one image; the L-BFGS fit then ended in an overflow traceback."""
    assert torch.ones(1, 3).std(0).isnan().all()
    with pytest.raises(SystemExit) as exit_:
        main(["probe", str(run_dir), "--train", "1", "--test", "4", "--epochs", "1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "cnnlab probe: error: argument --train: must be a whole number >= 2 (their std scales "
        "the features), got '1' (see cnnlab probe --help)"
    ]
    assert main(["probe", str(run_dir), "--train", "2", "--test", "4", "--epochs", "1"]) == 0


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


def test_a_bad_image_leaves_no_output_directory_behind(run_dir, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["explain", str(run_dir), str(tmp_path / "missing.png"), "--out", str(out)]) == 2
    assert "missing.png" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("method", ["saliency", "smoothgrad"])
def test_layer_with_a_pixel_method_is_refused(run_dir, image_file, tmp_path, capsys, method):
    """--layer was silently ignored by the methods that read no layer."""
    code = main(["explain", str(run_dir), str(image_file), "--method", method,
                 "--layer", "3", "--out", str(tmp_path)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "--layer" in err and method in err and "gradcam" in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_image_path_that_is_not_utf8_is_printed_escaped(run_dir, tmp_path, capsys):
    """print() of a path with a non-UTF-8 byte (a Latin-1 folder) raised UnicodeEncodeError."""
    import os

    folder = tmp_path / os.fsdecode(b"caf\xe9")
    try:
        folder.mkdir()
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "x.png")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    assert main(["explain", str(run_dir), str(folder / "x.png"), "--out", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.count("caf\\xe9") == 2  # the image and the heatmap written next to it


@pytest.mark.parametrize("command", ["explain", "visualize"])
def test_an_unwritable_out_is_the_one_line_before_any_resize_note(
    run_dir, tmp_path, capsys, command
):
    """An image of another size would print a note; with --out under a file, the error is
    the only line, and a bad image leaves no empty --out behind."""
    big = tmp_path / "big.png"
    Image.new("L", (40, 40), 128).save(big)
    what = [str(big)] if command == "explain" else ["--maps", str(big)]
    assert main([command, str(run_dir), *what, "--out", str(big / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "note" not in err and "big.png" in err
    missing = [str(tmp_path / "nope.png")] if command == "explain" else ["--maps", "nope.png"]
    assert main([command, str(run_dir), *missing, "--out", str(tmp_path / "fresh")]) == 2
    assert not (tmp_path / "fresh").exists()


def test_target_is_a_class_name_or_an_index(run_dir, image_file, tmp_path, capsys):
    """The top-k line names classes, so `--target class3` is what a user types next: it was
    argparse's "invalid int value". A name not of the run, or an index out of range, is one
    line naming the run's classes."""
    out = tmp_path / "ex"
    assert (
        main(["explain", str(run_dir), str(image_file), "--target", "class3", "--out", str(out)])
        == 0
    )
    assert [p.name.endswith("_class3.png") for p in out.iterdir()] == [True]
    capsys.readouterr()
    for target, says in [("cow", "'cow' is not a class"), ("10", "--target 10 is outside")]:
        assert main(["explain", str(run_dir), str(image_file), "--target", target]) == 2
        err = capsys.readouterr().err
        assert says in err and "class0, class1" in err and "0..9" in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_maps_of_a_layer_without_maps_names_the_layers_that_have_them(
    run_dir, image_file, tmp_path, capsys
):
    """`--maps IMG --layers 6` (the linear head) said only 'has no spatial maps', leaving the
    user to guess which layers have; explain's --layer names them."""
    code = main(["visualize", str(run_dir), "--maps", str(image_file), "--layers", "6",
                 "--out", str(tmp_path / "v")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "Traceback" not in "".join(err)
    assert "no spatial maps" in err[-1] and "--layers takes" in err[-1]
    assert err[-1].endswith(": 0, 1, 2, 3, 4"), err


@pytest.mark.parametrize(
    "args",
    [["--filters", "--layers", "1"], ["--maps", "{img}", "--steps", "5"],
     ["--filters", "--channels", "2"], ["--actmax", "4", "--layers", "1"]],
)  # fmt: skip
def test_visualize_refuses_an_option_its_drawing_does_not_read(
    run_dir, image_file, tmp_path, capsys, args
):
    """`--filters --layers 1` drew the first conv's filters, `--maps IMG --steps 5` the maps,
    each without a word of the option; explain refuses --layer with a pixel method alike."""
    args = [a.format(img=image_file) for a in args]
    assert main(["visualize", str(run_dir), *args, "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert "read by --" in err and "drop it" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "v").exists()
