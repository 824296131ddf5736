"""Gradient flow on a frozen backbone and on a tied weight. A frozen layer (requires_grad
False while others train) is measured and shown as frozen, never judged: its gradient does
not make the network "vanishing", nor, under torch.no_grad(), "cut off". A Parameter two
modules share (an autoencoder's decoder tied to its encoder) has one gradient, the sum over
both uses: listed once, under its first owner, the other owner noted. Truth: torch.autograd
on the same loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.cli.diagnose import _print_tables
from cnnlab.diagnose import activation_stats, dead_units, findings, gradient_flow


class Frozen(nn.Module):
    """A deep sigmoid MLP backbone (its gradient vanishes on the way down) and a 2-layer head."""

    def __init__(self, no_grad: bool = False):
        super().__init__()
        layers = [nn.Flatten(), nn.Linear(64, 32), nn.Sigmoid()]
        for _ in range(7):
            layers += [nn.Linear(32, 32), nn.Sigmoid()]
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3))
        self.backbone.requires_grad_(False)
        self.no_grad = no_grad

    def forward(self, x):
        with torch.set_grad_enabled(not self.no_grad and torch.is_grad_enabled()):
            h = self.backbone(x)
        return self.head(h)


class TiedAutoencoder(nn.Module):
    """Conv encoder, transposed-conv decoder with the encoder's weight (the same Parameter:
    Conv2d(1, 4) and ConvTranspose2d(4, 1) both hold a (4, 1, 3, 3) weight), then a head."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(1, 4, 3, padding=1)
        self.dec = nn.ConvTranspose2d(4, 1, 3, padding=1)
        self.dec.weight = self.enc.weight
        self.head = nn.Linear(64, 3)

    def forward(self, x):
        return self.head(self.dec(torch.relu(self.enc(x))).flatten(1))


def data(n: int = 32):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_a_frozen_backbone_is_shown_frozen_and_not_judged_vanishing():
    torch.manual_seed(0)
    model = Frozen()
    x, y = data()
    flow = gradient_flow(model, [(x, y)])
    assert [l.frozen for l in flow.layers] == [True] * 8 + [False] * 2
    assert flow.layers[0].l2 > 0  # measured all the same
    # the ratio of the trained layers: the head's first weight's gradient over its last's
    loss = F.cross_entropy(model(x), y)
    first, last = torch.autograd.grad(loss, [model.head[0].weight, model.head[2].weight])
    expected = float(first.norm() / last.norm())
    assert abs(flow.ratio - expected) < 1e-5 * expected
    assert not flow.vanishing and not flow.exploding
    assert "vanishing-gradients" not in {f.code for f in findings(flow=flow)}
    assert flow.to_dict()["layers"][0]["frozen"] is True
    assert "(frozen)" in str(flow).splitlines()[1]


def test_a_frozen_backbone_under_no_grad_is_frozen_not_cut_off():
    torch.manual_seed(0)
    flow = gradient_flow(Frozen(no_grad=True), [data()])
    assert all(l.frozen and not l.reached for l in flow.layers[:8])
    assert flow.cut_off == () and not flow.no_gradient
    assert {f.code for f in findings(flow=flow)}.isdisjoint({"cut-off", "no-gradient"})


def test_a_model_frozen_whole_singles_out_no_layer():
    """Frozen for inference, every weight alike: the flags say nothing of training."""
    torch.manual_seed(0)
    model = Frozen().requires_grad_(False)
    flow = gradient_flow(model, [data()])
    assert not any(l.frozen for l in flow.layers)
    assert flow.vanishing  # the sigmoid backbone, judged as any network


def test_a_tied_weight_is_listed_once_with_its_whole_gradient():
    torch.manual_seed(0)
    model = TiedAutoencoder()
    x, y = data()
    flow = gradient_flow(model, [(x, y)])
    assert [l.name for l in flow.layers] == ["enc", "head"]
    assert flow.layers[0].tied == ("dec",) and flow.layers[1].tied == ()
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), [model.enc.weight])
    assert abs(flow.layers[0].l2 - float(g.norm())) < 1e-5 * float(g.norm())
    assert flow.to_dict()["layers"][0]["tied"] == ("dec",)


def test_the_cli_table_notes_frozen_and_tied_layers(capsys):
    torch.manual_seed(0)
    for model, noted in ((Frozen(), "frozen"), (TiedAutoencoder(), "tied: also dec")):
        x, y = data()
        flow = gradient_flow(model, [(x, y)])
        _print_tables(dead_units(model, x), flow, activation_stats(model, x), findings(flow=flow))
        out = capsys.readouterr().out
        table = out[out.index("Gradient flow") : out.index("Activation statistics")]
        assert noted in table
        rows = [line for line in table.splitlines() if line.startswith("│")]
        if noted.startswith("tied"):
            assert not any(line.split("│")[1].strip() == "dec" for line in rows)
