"""Explain and diagnose functions given NumPy images (or a list of image tensors) are told
the call that makes the tensor they take; they were told only the type they got."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import diagnose, explain
from cnnlab.errors import ExplainError

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _model() -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers, nn.Linear(4, 3)).eval()


def test_numpy_images_are_told_torch_from_numpy():
    """Truth: the advised call gives the map of the same images as a tensor."""
    model, x = _model(), torch.rand(2, 1, 8, 8)
    with pytest.raises(ExplainError, match=r"got ndarray: pass torch\.from_numpy\(images\)"):
        explain.saliency(model, x.numpy())
    advised = explain.saliency(model, torch.from_numpy(x.numpy()))
    assert torch.equal(advised, explain.saliency(model, x))


def test_a_list_of_image_tensors_is_told_torch_stack():
    model, x = _model(), torch.rand(2, 1, 8, 8)
    with pytest.raises(ExplainError, match=r"got list: pass torch\.stack\(images\)"):
        explain.saliency(model, list(x))
    assert torch.equal(explain.saliency(model, torch.stack(list(x))), explain.saliency(model, x))


def test_diagnose_reads_numpy_images_as_their_tensor():
    """A NumPy (N, C, H, W) array was refused as 'each batch of data must be an (x, y) pair',
    whose advice fails too; an (images, labels) pair of arrays was already read. Truth: the
    same images as a tensor."""
    model, x = _model(), torch.rand(4, 1, 8, 8) - 0.5
    got = diagnose.dead_units(model, x.numpy())
    want = diagnose.dead_units(model, x)
    assert repr(got) == repr(want)
