"""The advice reads what the net runs: dead units behind a BatchNorm are not told to add one;
and `findings` names which argument takes which result when results are swapped."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.diagnose import dead_units, findings, gradient_flow
from cnnlab.errors import ExplainError


def net(bn: bool) -> nn.Sequential:
    """conv [-> BN] -> ReLU -> pool -> linear; half the channels forced off by a bias of
    -100 (BN's beta with BN, the conv's bias without): no input makes them fire."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    norm = [nn.BatchNorm2d(8)] if bn else []
    model = nn.Sequential(conv, *norm, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model.append(nn.Linear(8, 3))
    with torch.no_grad():
        (norm[0] if bn else conv).bias[:4] = -100.0
    return model.eval()


def dead_fix(model: nn.Module) -> str:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g)
    dead = dead_units(model, x)
    # truth: the channels whose pre-activation (the ReLU's input) is never > 0
    pre = model[:-4](x)
    assert [l.dead for l in dead.flagged] == [int((pre.amax(dim=(0, 2, 3)) <= 0).sum())] == [4]
    (found,) = [f for f in findings(dead, gradient_flow(model, (x, y))) if f.code == "dead-units"]
    return found.fix


def test_dead_units_behind_batchnorm_are_not_told_to_add_it():
    with_bn, without = dead_fix(net(bn=True)), dead_fix(net(bn=False))
    assert "add BatchNorm" not in with_bn and "bias (beta)" in with_bn
    assert "add BatchNorm before the activation" in without


def test_dead_units_alone_know_the_batchnorm_before_them():
    """findings(dead=...) without a gradient flow, as the report calls it: dead_units' own
    pass sees the normalisation, so the advice is the same as with the flow."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 8, 8, generator=g)
    for bn in (True, False):
        model = net(bn)
        dead = dead_units(model, x)
        assert dead.normed == (("2",) if bn else ())  # the ReLU: model[2] behind BN, else [1]
        (alone,) = [f.fix for f in findings(dead=dead) if f.code == "dead-units"]
        assert alone == dead_fix(model)


def test_findings_names_the_argument_for_each_result():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 3, (4,), generator=g)
    model = net(bn=False)
    flow, dead = gradient_flow(model, (x, y)), dead_units(model, x)
    for kw in ({"dead": flow}, {"flow": dead}, {"acts": dead}):
        with pytest.raises(ExplainError, match=r"dead=.*DeadUnits.*flow=.*GradientFlow") as e:
            findings(**kw)
        assert next(iter(kw)) in str(e.value).split(";")[0]
    with pytest.raises(ExplainError, match="flow="):
        findings(dead, dead)


class LayerScaled(nn.Module):
    """ConvNeXt's layer scale: a parameter of another name than `weight`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.layer_scale = nn.Parameter(torch.full((4, 1, 1), 0.5))

    def forward(self, x):
        return x[:, :1] + self.layer_scale * self.conv(x)


class Shift(nn.Module):
    """A module with a bias alone."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.linspace(-1, 1, 4))

    def forward(self, x):
        return x + self.bias[:, None, None]


def test_every_parameter_is_in_some_row_checked_against_autograd():
    torch.manual_seed(0)
    model = nn.Sequential(LayerScaled(), Shift(), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model.append(nn.Linear(4, 3))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 6, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
    flow = gradient_flow(model, (x, y))
    rows = {l.name: l for l in flow.layers}
    assert list(rows) == ["0.conv", "0", "1", "5"]  # forward order: 0.conv ends before block 0
    # truth: torch.autograd.grad of the mean loss, by hand
    model.train()
    params = [model[0].conv.weight, model[0].layer_scale, model[1].bias, model[5].weight]
    grads = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), params)
    truth = dict(zip(["0.conv", "0", "1", "5"], grads, strict=True))
    for name, gr in truth.items():
        assert rows[name].numel == gr.numel()
        assert rows[name].l2 == pytest.approx(float(gr.norm()), rel=1e-5)
        assert rows[name].max == pytest.approx(float(gr.abs().max()), rel=1e-5)
    # ratio: the first conv/linear weight's (0.conv) over the last's (5), as before
    assert flow.ratio == pytest.approx(rows["0.conv"].l2 / rows["5"].l2)


class Scaled(nn.Module):
    """A model that holds a parameter itself (a learned input scale)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), 1.5))
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x * self.scale)).mean((2, 3)))


def test_a_parameter_of_the_root_module_is_a_row_named_the_model():
    """A model that holds a parameter itself (a learned input scale, a class token) gets a
    row named "" (named_modules' name of the root), printed as "(the model)" rather than a
    blank; its numbers are autograd's gradient of the mean cross-entropy."""

    torch.manual_seed(0)
    model, x, y = Scaled(), torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    flow = gradient_flow(model, [(x, y)])
    root = next(l for l in flow.layers if l.name == "")
    (g,) = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), model.scale)
    assert root.l2 == pytest.approx(g.norm().item(), rel=1e-5)
    shown = [line.split()[:2] for line in str(flow).splitlines()[1:]]
    assert ["(the", "model)"] in shown and [] not in shown


def test_the_cli_table_and_the_report_name_the_root_s_row_the_model():
    """The same row in `cnnlab diagnose`'s table and the report's bar labels: "(the model)",
    not a blank cell or a label starting with a space."""
    from types import SimpleNamespace

    from rich.console import Console

    from cnnlab.cli.diagnose import _flow_table
    from cnnlab.report.facts import _flow

    torch.manual_seed(0)
    model, x, y = Scaled(), torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    console = Console(width=200, record=True)
    console.print(_flow_table(gradient_flow(model, [(x, y)])))
    assert "(the model)" in console.export_text()
    budget = SimpleNamespace(gradient_images=6)
    labels = _flow(SimpleNamespace(model=model, test=(None, x, y), budget=budget)).labels
    assert "(the model) Scaled" in labels and not any(label.startswith(" ") for label in labels)
