"""evaluate / predict and the CLI commands train, eval, predict: numbers against sklearn and
the model's own forward pass; bad input exits 2 with one line."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix
from torch import nn

from cnnlab.cli import main
from cnnlab.data import read_image
from cnnlab.train import TrainConfig, train
from cnnlab.train.evaluate import evaluate, predict, predict_logits, read_for_run, resize_note
from cnnlab.train.rundir import load_run
from tiny_nets import imported_run

CONV = [{"conv": {"filters": 16, "kernel": 3, "padding": "same"}}, "batchnorm", "relu"] * 2
GAP = {"name": "gap-head", "input": [1, 8, 8], "layers": [*CONV, "gap", {"linear": 10}]}
FLAT = {"name": "flat-head", "input": [1, 8, 8], "layers": [*CONV, "flatten", {"linear": 10}]}
QUICK = TrainConfig(epochs=3, batch_size=32, flip=False, tta=False, ema=None, precision="fp32")


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    train(GAP, "digits", base / "gap", QUICK)
    train(FLAT, "digits", base / "flat", QUICK)
    return base


def _png(path, pixels: np.ndarray):
    Image.fromarray(pixels).save(path)
    return path


def test_evaluate_matches_sklearn(runs):
    """Truth: sklearn's confusion matrix of the model's own argmax."""
    run = load_run(runs / "gap")
    ds = run.dataset("test")
    with torch.no_grad():
        predicted = run.model(run.preprocess(ds.images)).argmax(1)
    result = evaluate(run, "test")
    expected = confusion_matrix(ds.labels.numpy(), predicted.numpy(), labels=range(10))
    assert np.array_equal(np.array(result.confusion), expected)
    assert result.accuracy == pytest.approx((predicted == ds.labels).float().mean().item())
    assert result.per_class == pytest.approx(tuple(expected.diagonal() / expected.sum(1)))
    assert result.accuracy > 0.5  # 3 epochs on digits: far above chance (10 %)
    assert json.loads(json.dumps(result.to_dict()))["per_class"].keys() == set(run.classes)


def test_flip_tta_averages_logits_of_both_views(runs):
    run = load_run(runs / "gap")
    x = run.preprocess(run.dataset("test").images[:16])
    with torch.no_grad():
        expected = (run.model(x) + run.model(x.flip(-1))) / 2
    assert torch.allclose(predict_logits(run.model, x, tta=True), expected, atol=1e-5)


def test_shift_tta_averages_ten_views_made_with_torch_ops(runs):
    """Truth: the ten views built by hand with torch.roll on a reflect-padded copy."""
    run = load_run(runs / "gap")
    x = run.preprocess(run.dataset("test").images[:16])  # (16, 1, 8, 8)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    views = [x] + [
        torch.roll(padded, (-dy, -dx), (2, 3))[:, :, 2:-2, 2:-2]
        for dy, dx in ((-2, 0), (2, 0), (0, -2), (0, 2))
    ]
    views += [v.flip(-1) for v in views]
    assert not any(torch.equal(views[0], v) for v in views[1:])
    with torch.no_grad():
        expected = sum(run.model(v) for v in views) / 10
    got = predict_logits(run.model, x, tta=True, tta_shift=2)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.equal(predict_logits(run.model, x, tta=False, tta_shift=2), run.model(x).detach())


def test_predict_png_matches_softmax_and_resizes_other_sizes(runs, tmp_path):
    """Truth: the model's softmax on the test tensor; a 16×16 file gets the answer of
    cnnlab.data.read_image's 8×8 resize of it (as the folder loader resizes for training)."""
    run = load_run(runs / "gap")
    ds = run.dataset("test")
    pixels = ds.images[0, 0].numpy()  # (8, 8) uint8
    small = _png(tmp_path / "a.png", pixels)
    (p,) = predict(run, [small], top=3)
    with torch.no_grad():
        probs = run.model(run.preprocess(ds.images[:1])).softmax(1)[0]
    top = probs.topk(3)
    assert [c for c, _ in p.top] == [run.classes[i] for i in top.indices.tolist()]
    assert [q for _, q in p.top] == pytest.approx(top.values.tolist(), abs=1e-6)
    big = _png(tmp_path / "big.png", np.kron(pixels, np.ones((2, 2), np.uint8)))  # 16×16
    rgb = _png(tmp_path / "rgb.png", np.stack([pixels] * 3, -1))  # converted to 1 channel
    results = predict(run, [big, rgb], top=1)
    assert results[0].size == (16, 16) and results[0].resized_to == (8, 8)
    assert p.resized_to is None and results[1].resized_to is None
    with torch.no_grad():
        resized = run.model(run.preprocess(read_image(big, 1, (8, 8))[None])).softmax(1)[0]
    assert results[0].top[0] == (
        run.classes[int(resized.argmax())],
        pytest.approx(float(resized.max())),
    )
    assert results[1].top[0][0] == p.top[0][0]  # grey RGB = the grey image


def test_flatten_head_predicts_a_file_of_another_size_resized(runs, tmp_path):
    """A flatten head cannot run at 12×12 (the fixed-size trap), and needs not: every file is
    resized to the run's input as training resized its images (it used to be refused)."""
    run = load_run(runs / "flat")
    pixels = run.dataset("test").images[3, 0].numpy()
    other = _png(tmp_path / "other.png", np.kron(pixels, np.ones((3, 2), np.uint8)))  # 24×16
    (p,) = predict(run, [other], top=10)
    assert p.size == (24, 16) and p.resized_to == (8, 8)
    with torch.no_grad():
        probs = run.model(run.preprocess(read_image(other, 1, (8, 8))[None])).softmax(1)[0]
    assert dict(p.top) == pytest.approx(dict(zip(run.classes, probs.tolist(), strict=True)))


def test_cli_eval_and_predict_json(runs, tmp_path, capsys):
    assert main(["eval", str(runs / "gap"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["accuracy"] == pytest.approx(evaluate(load_run(runs / "gap")).accuracy)
    assert len(printed["confusion"]) == 10
    png = _png(tmp_path / "x.png", np.zeros((8, 8), np.uint8))
    assert main(["predict", str(runs / "gap"), str(png), "--top", "2", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert len(row["top"]) == 2 and row["image"] == str(png)
    assert main(["eval", str(runs / "gap")]) == 0
    assert "confusion matrix" in capsys.readouterr().out


def test_cli_bad_inputs_exit_2_with_one_line(runs, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    spec = tmp_path / "gap.json"
    spec.write_text(json.dumps(GAP))
    cases = [
        (["eval", str(tmp_path / "missing")], "not a run directory"),
        # the arguments swapped: it was told to train into the image (`--out corrupt.png`)
        (["predict", str(corrupt), str(runs / "gap")], "corrupt.png is a file, not a run dir"),
        # a missing image in the run's place: it was told to train into `--out lost.png`
        (["predict", str(tmp_path / "lost.png"), str(runs / "gap")], "is an image's name, not a"),
        (["predict", str(runs / "gap"), str(corrupt)], "corrupt.png"),
        (["predict", str(runs / "gap"), str(spec)], "gap.json: not a readable image (no image"),
        (["predict", str(runs / "gap"), str(tmp_path / "none.png")], "none.png"),
        (["predict", str(runs / "gap"), str(corrupt), "--top", "0"], "--top"),
        (["train", "--preset", "no-such-preset", "--out", str(tmp_path / "r")], "no-such-preset"),
        (["train", str(spec), "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "r")],
         "nodata"),
        (["train", str(spec), "--data", "digits", "--out", str(runs / "gap")], "already exists"),
        (["train", str(spec), "--data", "digits", "--epochs", "0", "--out", str(tmp_path / "r")],
         "epochs"),
        (["train", "--out", str(tmp_path / "r")], "--preset"),
    ]  # fmt: skip
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, (argv, err)


def _rgba_and_16bit(folder):
    """An RGBA PNG (opaque white top half, transparent white bottom) and a 16-bit grey ramp."""
    rgba = np.full((8, 8, 4), 255, np.uint8)
    rgba[4:, :, 3] = 0
    ramp = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)  # up to 63,000 of 65,535
    (folder / "a").mkdir(parents=True)
    Image.fromarray(rgba, "RGBA").save(folder / "a" / "rgba.png")
    Image.fromarray(ramp).save(folder / "a" / "gray16.png")  # mode I;16
    return [folder / "a" / "gray16.png", folder / "a" / "rgba.png"]  # the folder's order


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(8, 8), (6, 5), (11, 9)])
def test_predict_reads_files_as_the_folder_loader_does(tmp_path, channels, size):
    """Truth: image_folder's tensor for the same files at the same size (alpha over black,
    16 bits ÷ 257, cover-and-crop resize), and cnnlab.data.read_image's."""
    from cnnlab.data import image_folder

    files = _rgba_and_16bit(tmp_path / "imgs")
    folder = image_folder(tmp_path / "imgs", channels=channels, size=size).images  # (2, C, H, W)
    pixels, sizes = read_for_run(files, (channels, *size))
    assert torch.equal(pixels, folder) and sizes == [(8, 8), (8, 8)]
    assert torch.equal(pixels[1], read_image(files[1], channels, size))
    if size == (8, 8):
        assert (pixels[1][:, :4] == 255).all() and (pixels[1][:, 4:] == 0).all()  # alpha: black
        assert pixels[0, 0, 7, 7] == round(63000 / 257)


def _untrained_run(tmp_path, layers):
    """A Run of an untrained spec: enough for predict's size checks, no training needed."""
    from cnnlab.design.build import build
    from cnnlab.design.spec import load_spec
    from cnnlab.train.rundir import Run

    spec = load_spec({"name": "any-size", "input": [1, 8, 8], "layers": layers})
    config = {"classes": list("0123456789"), "mean": [0.5], "std": [0.25]}
    config.update(input_shape=[1, 8, 8], data="digits")
    return Run(tmp_path, spec, build(spec).eval(), config)


HEADS = {
    "adaptive pool, flatten": ["adaptiveconcatpool", "flatten"],
    "fixed map, flatten": [{"maxpool": 2}, "flatten"],  # would not run at 16×12: the trap
}


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("shape", [(16, 12), (4, 4)])  # larger; too small for the layers
def test_every_head_predicts_a_file_of_any_size_at_the_run_size(tmp_path, head, shape):
    """Whatever the head, a file is read at the run's 8×8 (it used to run at its own size, or
    be refused): the model's answer on read_image's resize of it, and the file's size kept."""
    conv = {"conv": {"filters": 4, "kernel": 3, "padding": "same"}}
    run = _untrained_run(tmp_path, [conv, "relu", *HEADS[head], {"linear": 10}])
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = _png(tmp_path / "other.png", pixels)
    (p,) = predict(run, [path], top=10)
    assert p.size == shape and p.resized_to == (8, 8)
    with torch.no_grad():
        probs = run.model(run.preprocess(read_image(path, 1, (8, 8))[None])).softmax(1)[0]
    assert dict(p.top) == pytest.approx(dict(zip(run.classes, probs.tolist(), strict=True)))


def _folder_with_problems(root):
    """Two classes of 8×8 grey PNGs, plus one RGB image (converted) and one corrupt file."""
    for name, value in (("dark", 40), ("light", 200)):
        (root / name).mkdir(parents=True)
        for i in range(10):
            _png(root / name / f"{i}.png", np.full((8, 8), value + i, np.uint8))
    _png(root / "dark" / "rgb.png", np.full((8, 8, 3), 90, np.uint8))
    (root / "light" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


def test_cli_train_on_a_folder_reports_skips_conversions_and_epochs(tmp_path, capsys):
    """stdout is not a terminal here (as in `make demo > log`): one plain line per epoch; the
    unreadable file and the conversion are printed; --strict fails on the unreadable file."""
    root = _folder_with_problems(tmp_path / "imgs")
    spec = tmp_path / "two.json"
    layers = [{"conv": {"filters": 4, "kernel": 3, "padding": "same"}}, "relu", "gap"]
    spec.write_text(
        json.dumps({"name": "two", "input": [1, 8, 8], "layers": [*layers, {"linear": 2}]})
    )
    argv = ["train", str(spec), "--data", str(root), "--epochs", "2", "--batch-size", "4"]
    argv += ["--precision", "fp32", "--no-tta", "--ema", "none"]
    assert main([*argv, "--out", str(tmp_path / "strict"), "--strict"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.png" in err, err
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out.splitlines()
    epochs = [line for line in out if line.startswith("epoch")]
    x = r"\d\.\d{4}"
    assert len(epochs) == 2, out
    for n, line in enumerate(epochs, 1):
        pattern = rf"epoch {n}/2  loss {x}  acc {x}  val acc {x}  [\d,]+ img/s  \d+\.\d s"
        assert re.fullmatch(pattern, line), line
    assert [line for line in out if line.startswith("skipped")] == [
        f"skipped {root / 'light' / 'broken.png'}: not a readable image"
    ]
    assert "converted 1 image to the model's input (RGB->L)" in out
    assert main([*argv, "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]


# --- predict's output and inputs that used to hang or mislead ----------------------------


def test_predict_refuses_a_named_pipe_instead_of_blocking(runs, tmp_path, capsys):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert main(["predict", str(runs / "gap"), str(fifo)]) == 2  # returns: nothing opened it
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pipe.png" in err


def test_piped_predict_prints_whole_paths_and_notes_another_size(runs, tmp_path, capsys):
    """stdout is captured (not a terminal): every path whole, however long; a 16×16 image
    given to an 8×8 run is resized, and one note line on stderr says so."""
    deep = tmp_path / ("a-rather-long-directory-name-" * 4) / "image-with-a-long-name.png"
    deep.parent.mkdir()
    pixels = np.zeros((8, 8), np.uint8)
    _png(deep, pixels)
    big = _png(tmp_path / "big.png", np.kron(pixels, np.ones((2, 2), np.uint8)))
    assert main(["predict", str(runs / "gap"), str(deep), str(big)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split("\t")[0] == str(deep) and lines[1].split("\t")[0] == str(big)
    assert captured.err == f"note: {big} is 16×16 (H×W); resized to 8×8, the run's input size\n"
    assert main(["predict", str(runs / "gap"), str(deep)]) == 0
    assert "note" not in capsys.readouterr().err  # the training size: nothing to note


def test_ctrl_c_during_start_up_is_one_line(monkeypatch, tmp_path, capsys):
    import cnnlab.train.inputs as inputs_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inputs_module, "load_splits", interrupted)
    argv = ["train", "--preset", "lenet5", "--data", "digits", "--out", str(tmp_path / "r")]
    assert main(argv) == 130
    assert capsys.readouterr().err.strip() == "cnnlab train: interrupted"
    assert not (tmp_path / "r").exists()  # nothing was written: the new directory is gone


CODE_NET = """
from torch import nn


def make(head="gap"):
    pool = [nn.AdaptiveAvgPool2d(1), nn.Flatten()] if head == "gap" else [nn.Flatten()]
    width = 8 if head == "gap" else 8 * 8 * 8
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), *pool, nn.Linear(width, 10))
"""


@pytest.mark.parametrize("head", ["gap", "flatten"])
def test_a_model_from_code_predicts_a_file_of_another_size_resized(tmp_path, head):
    """A run made from code has no spec to infer shapes from, and needs none: a 16×16 file is
    resized to the run's 8×8 whatever the head (a flatten head used to be refused)."""
    (tmp_path / "net.py").write_text(CODE_NET)
    model_ref = f"{tmp_path / 'net.py'}:make"
    out = tmp_path / "run"
    assert main(["train", "--model", model_ref, "--model-arg", f"head={head!r}", "--data",
                 "digits", "--epochs", "1", "--quiet", "--out", str(out)]) == 0  # fmt: skip
    run = load_run(out)
    big = _png(tmp_path / "big.png", np.zeros((16, 16), np.uint8))
    (p,) = predict(run, [big], top=2)
    assert p.size == (16, 16) and p.resized_to == (8, 8) and len(p.top) == 2


def test_resize_note_names_each_file_of_another_size_in_one_line():
    assert resize_note([("a.png", (8, 8))], (8, 8)) == ""
    files = [("a.png", (8, 8)), ("b.png", (16, 16)), ("c.png", (4, 6))]
    assert resize_note(files, (8, 8)) == (
        "2 images are not 8×8 (H×W: b.png 16×16, c.png 4×6); resized to 8×8, the run's input size"
    )
    many = [(f"{i}.png", (9, 9)) for i in range(5)]
    note = resize_note(many, (8, 8))
    assert note.startswith("5 images are not 8×8 (H×W: 0.png 9×9, 1.png 9×9, 2.png 9×9 and 2 more)")
    assert "\n" not in note


@pytest.mark.parametrize("channels", [2, 4])
def test_an_image_file_for_a_run_of_other_than_1_or_3_channels_is_one_clear_error(
    tmp_path, channels
):
    """A spec may take 4 channels; an image file gives 1 or 3: every command's reader says so
    instead of handing the model a batch it cannot take."""
    from cnnlab.errors import DataError

    path = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    with pytest.raises(DataError, match=f"must be 1 or 3 for an image file, got {channels}"):
        read_for_run([path], (channels, 8, 8))


class _Halving(nn.Module):
    """A model that halves its input in place before a linear map."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x.mul_(0.5)
        return self.fc(x.flatten(1))


def test_predict_logits_leaves_the_callers_images_as_they_were():
    """A model that changes its input in place changed the caller's images (a view of the
    data set), so a second evaluation of the same images saw them halved. Truth: the images
    before the call and the model's forward on a copy of them."""
    torch.manual_seed(0)
    model, images = _Halving(), torch.randn(6, 1, 2, 2)
    before = images.clone()
    first = predict_logits(model, images, batch_size=4)
    assert torch.equal(images, before)
    assert torch.equal(predict_logits(model, images, batch_size=4), first)
    assert torch.allclose(first, model(before.clone()).detach())


# `cnnlab predict RUN DIR` predicts every image file under DIR (sorted, nested folders too,
# hidden and non-image files left out), as the folder loader lists a class folder; a directory
# without an image is one line naming it, exit 2.


NET = """
from torch import nn
def make():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))
"""


def test_a_folder_is_its_image_files(tmp_path, capsys):
    run = imported_run(tmp_path, NET, data="digits")
    folder = tmp_path / "mine"
    (folder / "nested").mkdir(parents=True)
    for name in ("b.png", "a.jpg", "nested/c.bmp"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("no image")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    expected = sorted(
        os.path.join(d, f)
        for d, _, files in os.walk(folder)
        for f in files
        if f.endswith((".png", ".jpg", ".bmp"))
    )
    capsys.readouterr()
    assert main(["predict", str(run), str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == expected


def test_an_unreadable_file_in_a_folder_is_skipped_and_named(tmp_path, capsys):
    run = imported_run(tmp_path, NET, data="digits")
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "c.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / name)
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n cut off")  # a failed copy
    capsys.readouterr()
    # one corrupt photo stopped the whole folder, as no training run is stopped by one
    assert main(["predict", str(run), str(folder), "--json"]) == 0
    out, err = capsys.readouterr()
    assert [row["image"] for row in json.loads(out)] == [
        str(folder / "a.png"),
        str(folder / "c.png"),
    ]
    assert err.splitlines() == [
        f"skipped {folder / 'b.png'}: not a readable image (no image format PIL knows)"
    ]
    assert main(["predict", str(run), str(folder / "b.png"), str(folder)]) == 2  # named: refused
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "b.png: not a readable image" in err


def test_a_named_unreadable_file_is_refused_before_a_folder_is_read(tmp_path, capsys, monkeypatch):
    """`predict RUN photos/ bad.png` read and predicted every image of the folder, then
    refused bad.png; it is refused first, the folder's files neither read nor predicted."""
    import cnnlab.train.evaluate as evaluate

    run = imported_run(tmp_path, NET, data="digits")
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "c.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / name)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n cut off")
    read, real_read = [], evaluate.read_for_run
    monkeypatch.setattr(
        evaluate,
        "read_for_run",
        lambda paths, shape: read.extend(map(str, paths)) or real_read(paths, shape),
    )
    predicted, real_predict = [], evaluate.predict_logits
    monkeypatch.setattr(
        evaluate, "predict_logits", lambda *a, **k: predicted.append(1) or real_predict(*a, **k)
    )
    capsys.readouterr()
    assert main(["predict", str(run), str(folder), str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "bad.png: not a readable image" in err
    assert read == [str(bad)] and predicted == []


def test_a_folder_without_images_is_named(tmp_path, capsys):
    run = imported_run(tmp_path, NET, data="digits")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no image")
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "empty: a directory with no image file" in err
