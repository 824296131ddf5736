"""diagnose names an activation a forward computes with a function by its site (`se.relu()`
for F.relu in an SE gate's forward, `relu()` in the model's own): typed back as a layer of
Grad-CAM, such a name was refused as an unknown layer with every module listed. It says what
the name is and which modules hold it. Truth: the names diagnose itself gives."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import diagnose, explain

pytestmark = pytest.mark.usefixtures("one_thread")


class Gate(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.pool, self.fc1, self.fc2 = (
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(c, 2, 1),
            nn.Conv2d(2, c, 1),
        )

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(self.pool(x)))))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.gate, self.head = nn.Conv2d(1, 4, 3, padding=1), Gate(4), nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.gate(F.relu(self.conv(x))).mean((2, 3)))


def test_a_site_of_diagnose_typed_as_a_layer_says_which_module_holds_it():
    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(2, 1, 8, 8)
    sites = [layer.name for layer in diagnose.activation_stats(model, x).layers]
    assert sites == ["relu()", "gate.relu()", "gate.sigmoid()"]  # the truth: diagnose's own
    said = {}
    for site in sites:
        with pytest.raises(explain.ExplainError) as e:
            explain.gradcam(model, x, layer=site)
        said[site] = str(e.value)
    assert "the forward of 'gate' computes with a function" in said["gate.relu()"]
    assert said["gate.sigmoid()"].endswith("give 'gate' (its output) or one of its layers: "
                                           "gate.pool, gate.fc1, gate.fc2")  # fmt: skip
    assert "the model's own forward" in said["relu()"]
    assert said["relu()"].endswith("give a layer: conv, gate, head"), said["relu()"]
