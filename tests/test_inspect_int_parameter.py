"""A model holding an integer or boolean `nn.Parameter(requires_grad=False)` (a step counter, a
flag) is not a dtype misfit: only floating-point parameters decide the dtype images are
made in, and `model.float()`, the advice given, leaves such a parameter as it is. Truth:
torch's own `Module.float()` and a training run that reopens."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.inspect import classifier_misfit

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


class Counted(nn.Module):
    def __init__(self, dtype: torch.dtype = torch.long):
        super().__init__()
        self.steps = nn.Parameter(torch.zeros((), dtype=dtype), requires_grad=False)
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4, 10),
        )  # fmt: skip

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.bool])
def test_an_integer_parameter_is_no_dtype_misfit(dtype):
    model = Counted(dtype)
    assert model.float().steps.dtype == dtype  # the advice given does not convert it
    assert classifier_misfit(model, (1, 8, 8), 10) is None
    model.body[0].double()  # a floating-point parameter of another dtype still decides
    misfit = classifier_misfit(model, (1, 8, 8), 10)
    assert misfit is not None and misfit.kind == "weights"
    assert "float64 (body.0.weight)" in misfit.why


def test_such_a_model_trains_and_reopens(tmp_path):
    from cnnlab.train import TrainConfig, load_run, train

    torch.manual_seed(0)
    model = Counted()
    config = TrainConfig(epochs=1, batch_size=64, precision="fp32", flip=False, tta=False)
    metrics = train(model, "digits", tmp_path / "run", config)
    assert 0 <= metrics["test_acc"] <= 1
    run = load_run(tmp_path / "run", model=Counted())
    assert run.model.steps.dtype == torch.long
    assert torch.equal(run.model.body[0].weight, model.body[0].weight)
