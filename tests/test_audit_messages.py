"""Messages a user reads about their own model: the layer where a forward failed is named
with its article ("an AvgPool2d", "a Linear"; it said "a AvgPool2d"). Truth: torch's own
error for the same input, which the message quotes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.inspect import classifier_misfit


@pytest.mark.parametrize(
    ("pool", "article"), [(nn.AvgPool2d(4), "an AvgPool2d"), (nn.MaxPool2d(4), "a MaxPool2d")]
)
def test_the_failing_layer_is_named_with_its_article(pool, article):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), pool, nn.Flatten(), nn.Linear(2, 3))
    with pytest.raises(RuntimeError) as torch_says:
        model(torch.zeros(2, 1, 5, 5))
    misfit = classifier_misfit(model, (1, 5, 5), 3)
    first = " ".join(str(torch_says.value).split())
    assert misfit.why == f"{first} (in layer 1, {article}, given 2×2×3×3)"
