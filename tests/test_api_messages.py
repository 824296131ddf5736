"""Three messages a notebook user meets: a layer given as a list (one name is taken, a str),
activation_maximization's input_size with the wrong channels (told as input_size's, with the
fixed size, where torch's conv says what it takes), and which std activation_stats reports
(checked against torch's own `std(correction=...)`)."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from cnnlab import diagnose, explain
from cnnlab.errors import ExplainError


def _net(channels: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 2),
    ).eval()  # fmt: skip


GIVEN = {
    "list": lambda m: ["1"],
    "tuple": lambda m: ("1",),
    "module": lambda m: m[1],
    "list of a module": lambda m: [m[1]],
}


@pytest.mark.parametrize("kind", GIVEN)
def test_a_layer_given_as_a_list_is_told_to_give_one_name(kind):
    """The name suggested is the module's own in named_modules() (found by identity), and
    gradcam at it runs: one layer, a str."""
    model, x = _net(), torch.randn(2, 3, 8, 8)
    given = GIVEN[kind](model)
    (name,) = [n for n, m in model.named_modules() if m is model[1]]
    with pytest.raises(ExplainError) as caught:
        explain.gradcam(model, x, layer=given)
    said = str(caught.value)
    assert "unknown layer" not in said
    assert f"give {name!r}" in said
    if not isinstance(given, nn.Module):
        kind = type(given).__name__
        assert f"one layer name, a str (`relu #2` for a call), not a {kind}" in said
    assert explain.gradcam(model, x, layer=name).shape[0] == 2


def test_a_list_of_several_layers_names_them_all():
    model, x = _net(), torch.randn(1, 3, 8, 8)
    with pytest.raises(ExplainError, match=r"not a list \['0', '1'\]: give one of '0', '1'"):
        explain.gradcam(model, x, layer=["0", "1"])


def test_input_size_with_the_wrong_channels_is_told_as_input_size():
    """torch's conv refuses 1 channel where it takes 3 (its own error, the truth); the message
    names input_size and the fixed size, which then runs."""
    model = _net(3)
    with pytest.raises(RuntimeError, match="to have 3 channels, but got 1"):
        model(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ExplainError) as caught:
        explain.activation_maximization(model, "0", 0, input_size=(1, 16, 16), steps=1, restarts=1)
    said = str(caught.value)
    assert said.startswith("input_size (1, 16, 16) has 1 channel where the model's first layer")
    fixed = eval(re.search(r"give input_size=(\(.*\))$", said)[1])
    assert fixed == (model[0].in_channels, 16, 16)
    result = explain.activation_maximization(model, "0", 0, input_size=fixed, steps=1, restarts=1)
    assert tuple(result.images.shape) == (1, *fixed)


def test_activation_stats_std_is_the_population_one_and_says_so():
    """5,000 values: torch's y.std() (÷ n−1) and y.std(correction=0) differ at the 5th digit;
    the std reported is the second, and both the text and the dict say which."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 50), nn.ReLU())
    x = torch.randn(100, 10)
    with torch.no_grad():
        y = model(x).double()
    stats = diagnose.activation_stats(model, x, batch_size=32)
    (relu,) = stats.layers
    population, sample = float(y.std(correction=0)), float(y.std())
    assert relu.std == pytest.approx(population, rel=1e-6)
    assert abs(relu.std - sample) > 1e-5  # told apart at this size
    assert "std: population, correction=0, as x.std(correction=0)" in str(stats)
    assert stats.to_dict()["std_correction"] == 0
    assert "correction=0" in diagnose.activation_stats.__doc__
