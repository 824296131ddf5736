"""The report of a model whose convs are under weight_norm / spectral_norm
(torch.nn.utils.parametrizations): a ParametrizedConv2d holds one child, `parametrizations`,
which computes its weight, and the report took it for a block, not a layer, so the page said
'the model has no layer with a spatial (C, H, W) output' and left out its feature maps,
activation maximisation and receptive field. Truth: forward hooks on the model itself, the
maps each conv hands on."""

from __future__ import annotations

from cnnlab.report.sources import Budget, Sources
from cnnlab.train.rundir import load_run
from tiny_nets import fired, imported_run

NETS = """
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations


class Net(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.c1 = parametrizations.spectral_norm(nn.Conv2d(1, 4, 3, padding=1))
        self.c2 = parametrizations.weight_norm(nn.Conv2d(4, 6, 3, stride=2, padding=1))
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        x = F.relu(self.c2(F.relu(self.c1(x))))
        return self.fc(x.mean((2, 3)))


def make(classes=10):
    torch.manual_seed(0)
    return Net(classes)
"""


def _spatial_outputs(model, x) -> list[str]:
    """The modules (no container) whose output is a (B, C, H, W) map with H·W > 1."""

    def keep(name, m, y):
        spatial = y.dim() == 4 and y.shape[2] * y.shape[3] > 1
        return spatial and "parametrizations" not in name and name != "fc"

    return fired(model, x, keep)


def test_parametrized_convs_are_the_reports_layers_and_stages(tmp_path):
    path = imported_run(tmp_path, NETS, data="digits")
    run = load_run(path)
    src = Sources(path, run, None, Budget())
    _, x, _ = src.test
    run.model.eval()
    truth = _spatial_outputs(run.model, x[:1])
    assert truth == ["c1", "c2"]
    assert [name for name, _, _ in src.layers if name in truth] == truth
    assert src.map_layers == truth
    assert src.stages == truth  # 8×8, then 4×4
