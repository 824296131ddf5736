"""summary finds a model's lazy tensors in its modules' own dicts (`_lazy_tensors`): the same
tensors, in the same order, as torch's is_lazy over model.parameters() and model.buffers()."""

from __future__ import annotations

import itertools

from torch import nn
from torch.nn.parameter import UninitializedParameter, is_lazy

from cnnlab.design.summary import _lazy_tensors, summary
from cnnlab.design.summary.copying import named_modules


def _torchs(model: nn.Module) -> list[int]:
    return [id(t) for t in itertools.chain(model.parameters(), model.buffers()) if is_lazy(t)]


def test_lazy_tensors_are_torchs_lazy_parameters_and_buffers_each_once():
    shared = nn.LazyConv2d(8, 3)
    model = nn.Sequential(shared, nn.LazyBatchNorm2d(), nn.ReLU(), shared, nn.Flatten())
    model.add_module("head", nn.LazyLinear(4))
    model.head.register_parameter("stray", UninitializedParameter())
    found = [id(t) for t in _lazy_tensors(named_modules(model))]
    assert found == _torchs(model) and len(found) == 9  # conv 2, norm 4, linear 2, stray
    for m in (nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), nn.Linear(2, 2)):
        assert _lazy_tensors(named_modules(m)) == [] == _torchs(m)


def test_a_lazy_model_is_summarized_and_left_lazy():
    model = nn.Sequential(nn.LazyConv2d(8, 3), nn.LazyBatchNorm2d(), nn.Flatten(), nn.LazyLinear(4))
    result = summary(model, (3, 8, 8))
    assert result.total_params == 3 * 8 * 9 + 8 + 16 + 8 * 36 * 4 + 4
    assert len(_torchs(model)) == 8 and isinstance(model[0].weight, UninitializedParameter)
