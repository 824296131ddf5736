"""A layer named to explain, probe or visualize that has no output to read is told why and
what to name instead. A ModuleList of blocks (as Hugging Face's ConvNeXt holds its stages) is
never called itself, a wrapped model returns an output object, a module may be held and not
used: each was 'produced no tensor output in the forward pass (it is not called, or its
output is neither ...); choose another layer', naming no layer, and the list of valid names
given for an unknown one offered the ModuleList, which was then refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain
from cnnlab.errors import ExplainError


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Conv2d(4, 4, 3, padding=1) for _ in range(2)])
        self.empty = nn.ModuleList()
        self.unused = nn.Conv2d(4, 4, 1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = torch.relu(block(x))
        return {"logits": self.head(x.mean((2, 3)))}  # an output object, as HF's


class Wrapped(nn.Module):
    def __init__(self):
        super().__init__()
        self.m = Inner()

    def forward(self, x):
        return self.m(x)["logits"]


@pytest.fixture
def model_x():
    torch.manual_seed(0)
    return Wrapped().eval(), torch.randn(2, 1, 8, 8)


def test_a_module_list_names_its_layers(model_x):
    model, x = model_x
    with pytest.raises(ExplainError) as info:
        explain.gradcam(model, x, layer="m.blocks")
    assert "'m.blocks' is a ModuleList, a container the model never calls itself" in str(info.value)
    assert str(info.value).endswith("name one of them: m.blocks.0, m.blocks.1")
    explain.gradcam(model, x, layer="m.blocks.1")  # the way named works
    with pytest.raises(ExplainError, match="'m.empty' is a ModuleList.*it holds none"):
        explain.gradcam(model, x, layer="m.empty")


def test_a_layer_returning_an_output_object_is_told_so_with_the_maps_grad_cam_takes(model_x):
    model, x = model_x
    with pytest.raises(ExplainError) as info:
        explain.gradcam(model, x, layer="m")
    text = str(info.value)
    assert "layer 'm' returns a dict, which is neither a tensor nor a tuple/list" in text
    assert text.endswith("Grad-CAM needs one of: m.stem, m.blocks.0, m.blocks.1")


def test_a_layer_the_forward_does_not_call_is_told_so(model_x):
    model, x = model_x
    with pytest.raises(ExplainError) as info:
        explain.gradcam(model, x, layer="m.unused")
    assert "layer 'm.unused' is not called in the forward pass; Grad-CAM needs one of" in str(
        info.value
    )
    with pytest.raises(ExplainError, match="'m.unused' is not called in the forward pass"):
        explain.feature_maps(model, x, ["m.unused"])


def test_the_valid_names_of_an_unknown_layer_leave_out_containers_never_called(model_x):
    model, x = model_x
    with pytest.raises(ExplainError) as info:
        explain.gradcam(model, x, layer="nope")
    valid = str(info.value).split("valid layer names: ")[1].split(", ")
    assert "m.blocks" not in valid and "m.empty" not in valid
    assert {"m", "m.stem", "m.blocks.0", "m.unused", "m.head"} <= set(valid)


def test_a_compiled_child_is_a_layer_not_a_container():
    """torch.compile's OptimizedModule has no forward of its class, a TorchScript module's
    raises when read: each is called all the same."""
    from cnnlab.inspect.order import never_called

    assert not never_called(torch.compile(nn.Conv2d(1, 1, 1)))
    assert not never_called(torch.jit.script(nn.Conv2d(1, 1, 1)))
    assert never_called(nn.ModuleList()) and never_called(nn.ModuleDict())
    assert not never_called(nn.Sequential())
