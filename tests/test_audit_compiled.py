"""A model compiled whole (`return torch.compile(net)`) or with a compiled child, through the
check every command runs first and through the commands that open its run."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.inspect import classifier_misfit


def _net(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes),
    )  # fmt: skip


def test_the_classifier_check_takes_a_model_compiled_whole_and_still_names_a_misfit():
    """The check's hooks, traced by dynamo inside a compiled root, made it fail with dynamo's
    own AssertionError ('already tracked for mutation'), so `train` and `import` refused a
    model that runs. Truth: the plain model's own forward gives (2, 3) logits."""
    plain = _net()
    assert plain(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    compiled = torch.compile(plain)
    assert classifier_misfit(compiled, (1, 8, 8), 3) is None
    assert classifier_misfit(compiled, (1, 8, 8), 3, memory_format=torch.channels_last) is None
    misfit = classifier_misfit(compiled, (1, 8, 8), 5)
    assert misfit is not None and misfit.kind == "classes"
