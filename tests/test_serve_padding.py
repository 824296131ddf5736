"""The dot product at a border unit of a conv that pads with image pixels (padding_mode
'reflect', 'replicate', 'circular'): every unit of such a conv was refused ("only zero
padding is traced"), the inner ones too. Truth: torch's own F.pad then F.conv2d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.explorer.probe import Network, dot_product

pytestmark = pytest.mark.usefixtures("one_thread")
MODES = ("reflect", "replicate", "circular")


def model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
        nn.Conv2d(3, 4, (3, 5), padding=(1, 2), padding_mode="replicate"),
        nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=2, padding_mode="circular"),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
    ).eval()  # fmt: skip


@pytest.mark.parametrize("at", [0, 1, 2], ids=MODES)
def test_border_units_of_a_padding_mode_add_up_as_torch_pads(at):
    net, x = model(), torch.randn(1, 2, 9, 11)
    found = Network.of(net, (2, 9, 11), x)
    probe = found.probe(x)
    conv, name = net[at], str(at)
    inp = probe.inputs[name][None]  # what the conv read
    ph, pw = conv.padding
    truth = F.conv2d(
        F.pad(inp, (pw, pw, ph, ph), mode=conv.padding_mode), conv.weight, conv.bias,
        conv.stride, 0, conv.dilation, conv.groups,
    )[0]  # fmt: skip
    f_, h, w = truth.shape
    for f, i, j in [(0, 0, 0), (f_ - 1, h - 1, w - 1), (1, 0, w - 1), (f_ - 1, h - 1, 0)]:
        trace = dot_product(found, probe, name, f, i, j)
        assert trace["output"] == pytest.approx(float(truth[f, i, j]), abs=1e-5)
        assert trace["network"] == pytest.approx(float(truth[f, i, j]), abs=1e-5)
        assert trace["padding_mode"] == conv.padding_mode
    corner = dot_product(found, probe, name, 0, 0, 0)["patch"][0]
    assert any(v != 0 for v in corner[0])  # the padded row holds pixels, not zeros
