"""`cnnlab explain --layer` and `visualize --actmax` read a layer's name as `probe` and
`visualize --maps` do: `relu` the first call of a ReLU module reused after three convs,
`relu #2` its second (files `..._relu_call2_...`), one past the last refused naming the
calls; they read its last call under `relu` and refused `relu #2`. Truth: Grad-CAM of the
second call from plain hooks (tests/test_explain_call_labels.py's `by_hand`), drawn as the
command draws it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.explain import overlay
from test_explain_call_labels import by_hand
from test_probe_calls import CODE
from tiny_nets import noise_png, trained_from_code

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return trained_from_code(tmp_path_factory.mktemp("reused"), CODE)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return noise_png(tmp_path_factory.mktemp("img") / "x.png")


def test_explain_layer_reads_the_call_named(run_dir, image, tmp_path, capsys):
    from cnnlab.cli.explain import read_images
    from cnnlab.train import load_run

    run = load_run(run_dir)
    raw = read_images([str(image)], (1, 16, 16))
    x = run.preprocess(raw)
    target = run.model.eval()(x).argmax(1)
    out = tmp_path / "e"
    argv = ["explain", str(run_dir), str(image), "--layer", "relu #2", "--out", str(out)]
    assert main(argv) == 0
    (written,) = out.iterdir()
    assert f"_gradcam_relu_call2_class{int(target[0])}.png" in written.name
    heat = by_hand(run.model, x, target)[1][0]
    pic = overlay(raw[0].float() / 255, heat).repeat_interleave(14, 1).repeat_interleave(14, 2)
    truth = (pic.permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
    got = np.asarray(Image.open(written)).astype(np.int16)
    assert np.abs(got - truth).max() <= 1
    capsys.readouterr()
    assert main([*argv[:4], "relu #4", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "called 3 times" in err and "(relu, relu #2, relu #3)" in err, err


def test_visualize_actmax_reads_the_call_named(run_dir, tmp_path, capsys):
    out = tmp_path / "a"
    argv = ["visualize", str(run_dir), "--actmax", "relu #2", "--channels", "2", "--steps", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["actmax_relu_call2.png"]
    capsys.readouterr()
    argv[3] = "relu #4"
    assert main([*argv, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "called 3 times" in err, err
