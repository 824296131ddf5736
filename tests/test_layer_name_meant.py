"""An unknown layer name is answered with the layer meant before the list of every name (a
DenseNet-121 has 400): the name under the user's wrapper attribute (`features.0` for
`m.features.0`, a Hugging Face model held as `self.m`), or the closest spelling. Truth: the
model's own named_modules, and the suggested name accepted by the same call."""

import re

import pytest
import torch
from torch import nn

from cnnlab import explain
from cnnlab.errors import ExplainError


class Wrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.m = nn.Module()
        self.m.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.m.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.m.head(self.m.features(x).mean((2, 3)))


@pytest.mark.parametrize(
    "given, meant", [("features.0", "m.features.0"), ("m.featurs.1", "m.features.1")]
)
def test_unknown_layer_names_the_layer_meant(given, meant):
    model, x = Wrapper(), torch.randn(2, 1, 8, 8)
    with pytest.raises(ExplainError) as info:
        explain.gradcam(model, x, layer=given)
    said = re.search(r"did you mean '([^']+)'\?; valid layer names", str(info.value))
    assert said and said.group(1) == meant, str(info.value)
    assert dict(model.named_modules())[meant] is not None
    assert explain.gradcam(model, x, layer=meant).shape == (2, 8, 8)


def test_a_name_near_nothing_gets_the_list_alone():
    with pytest.raises(ExplainError) as info:
        explain.gradcam(Wrapper(), torch.randn(2, 1, 8, 8), layer="classifier")
    assert "did you mean" not in str(info.value)
    assert "valid layer names: m.features, m.features.0" in str(info.value)
