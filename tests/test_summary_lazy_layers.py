"""`cnnlab.summary` of a model with lazy layers (nn.LazyConv2d, nn.LazyBatchNorm2d,
nn.LazyLinear), whose parameters a first forward makes: the summary makes them on a copy
with one dry forward of the input size, as torch advises, and summarizes it; torch's
'Attempted to use an uninitialized parameter' ValueError was raised. Truth: the same
layers built with their sizes given, and torch's own parameter count after a forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.parameter import is_lazy

import cnnlab
from cnnlab.errors import CnnlabError

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def _lazy() -> nn.Module:
    return nn.Sequential(
        nn.LazyConv2d(8, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.LazyLinear(10),
    )  # fmt: skip


def _sized() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
    )  # fmt: skip


def _facts(s) -> list[tuple]:
    return [(r.name, r.kind, r.output_shape, r.params, r.macs, r.receptive_field) for r in s.rows]


def test_lazy_layers_are_summarized_as_their_sized_twins():
    model = _lazy()
    s = cnnlab.summary(model, (3, 16, 16))
    assert _facts(s) == _facts(cnnlab.summary(_sized(), (3, 16, 16)))
    real = _lazy()
    with torch.no_grad():
        real.eval()(torch.zeros(1, 3, 16, 16))  # torch's way: one forward makes them
    assert s.total_params == sum(p.numel() for p in real.parameters()) == 5_370
    assert all(is_lazy(p) for p in model.parameters())  # the user's model is left lazy


def test_a_size_the_dry_forward_refuses_is_one_error_saying_what_to_run():
    with pytest.raises(CnnlabError) as caught:
        cnnlab.summary(_lazy(), (3, 1, 1))  # MaxPool2d(2) of a 1×1 map
    said = str(caught.value)
    assert "lazy layers (0, 1, 5)" in said and "3×1×1" in said
    assert "run one forward of your images first" in said and "\n" not in said
