"""`cnnlab explain --layer L` where Grad-CAM at L is zero everywhere (drawn as no heat at all):
one note says so and names the default layer. Truth: autograd's gradient at L is zero."""

from __future__ import annotations

import inspect

import numpy as np
import torch
from PIL import Image

from cnnlab.cli import main
from test_user_models_more import ClassToken
from tiny_nets import imported_run, outputs

# The logits read a class token alone (as a ViT's head): `query`'s map feeds only the patch
# outputs, which no logit reads, so its gradient is exactly zero.
NET = f"""\
import torch
from torch import nn


{inspect.getsource(ClassToken)}

def make():
    torch.manual_seed(0)
    return ClassToken()
"""


def _image(path):
    Image.fromarray((np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)).save(path)
    return str(path)


def test_a_blank_layer_is_told_with_the_default(tmp_path, capsys):
    run = imported_run(tmp_path, NET, data="digits", input_shape=(1, 16, 16))
    image = _image(tmp_path / "a.png")
    capsys.readouterr()
    assert main(["explain", str(run), image, "--layer", "query", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "gradcam at query is zero over the whole image for" in err
    assert "the default layer is patch" in err
    # the truth: autograd gives `query`'s output a gradient of zeros
    from cnnlab.train.rundir import load_run

    model = load_run(run).model
    logits, seen = outputs(model.query, lambda: model(torch.rand(1, 1, 16, 16)))
    (grad,) = torch.autograd.grad(logits[0].max(), seen)
    assert not grad.any()


def test_a_layer_with_heat_gets_no_note(tmp_path, capsys):
    run = imported_run(tmp_path, NET, data="digits", input_shape=(1, 16, 16))
    image = _image(tmp_path / "a.png")
    capsys.readouterr()
    assert main(["explain", str(run), image, "--layer", "patch", "--out", str(tmp_path / "o")]) == 0
    assert "zero over the whole image" not in capsys.readouterr().err
