"""Activation maximisation on a layer whose output has no axis of one row per image: the
classic CRNN head's Linear runs on the LSTM's output viewed as (T·B, H), so its (T·B, K) rows
are every image's steps at once. It took row i as image i (step 0 of image i) and
maximised that; the probe refuses such a layer. Now activation maximisation refuses it too,
naming the layer and the shape torch gives it; the head's own (T, B, K) output, whose
images are on dim 1, still runs."""

from __future__ import annotations

import pytest
import torch

from cnnlab import explain
from cnnlab.errors import ExplainError
from test_walk_cmd_probe_crnn_head import STEPS, _model

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (1, 8, 20)


def _rows(model, layer: str, images: int) -> int:
    """How many rows torch's forward of `images` images gives `layer`'s output."""
    seen = []
    handle = model.get_submodule(layer).register_forward_hook(
        lambda m, a, out: seen.append(len(out))
    )
    with torch.no_grad():
        model(torch.zeros(images, *SIZE))
    handle.remove()
    return seen[0]


def test_a_layer_with_every_images_steps_as_rows_is_refused():
    model = _model()
    assert _rows(model, "head.embedding", 2) == 2 * STEPS  # (T·B, K): no row per image
    with pytest.raises(ExplainError, match=r"'head\.embedding' gives \(10, 11\) for 2 images"):
        explain.activation_maximization(model, "head.embedding", [0], steps=2, input_size=SIZE)


def test_the_head_whose_images_are_on_dim_1_still_runs():
    model = _model()
    assert _rows(model, "head", 2) == STEPS  # (T, B, K): the images on dim 1
    result = explain.activation_maximization(model, "head", [0, 3], steps=2, input_size=SIZE)
    assert result.activation.shape == (2,)
