"""The probabilities-out lint: a model whose output a softmax or sigmoid makes (behind a
reshape at most) hands cross-entropy probabilities, which it takes a softmax of again (§5.5).
Truths: torch's F.cross_entropy of the best such outputs (one-hot probabilities) is
−ln(e/(e + n − 1)), the bound the message gives, and its gradient is the logits' times the
softmax's Jacobian; a softmax inside the net (attention), a gate's sigmoid, log_softmax
(cross-entropy of log-probabilities equals the logits') and the presets are silent."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.presetfiles import preset_names
from cnnlab.design.summary import _trace_module, summary
from cnnlab.design.summary.facts import OutputFact
from cnnlab.design.summary.lints import probabilities_out, probability_ceiling
from cnnlab.train.guard import final_op, loss_floor

pytestmark = pytest.mark.usefixtures("one_thread")

CODE = "probabilities-out"


def head(classes: int = 10) -> list[nn.Module]:
    return [
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, classes),
    ]


class Ending(nn.Module):
    """head() then `last` (a function) in the forward."""

    def __init__(self, last, classes: int = 10) -> None:
        super().__init__()
        self.body, self.last = nn.Sequential(*head(classes)), last

    def forward(self, x):
        return self.last(self.body(x))


class Attention(nn.Module):
    """A softmax over positions inside the net; the output is a Linear's logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4, 10)

    def forward(self, x):
        h = self.conv(x).flatten(2).transpose(1, 2)  # (B, positions, 4)
        a = torch.softmax(h @ h.transpose(1, 2) / 2, dim=-1) @ h
        return self.fc(a.mean(1))


class Gate(nn.Module):
    """Squeeze-and-excitation: x · σ(s) ends the net's map; a Linear's logits the output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.gate, self.fc = nn.Conv2d(1, 4, 3), nn.Sigmoid(), nn.Linear(4, 10)

    def forward(self, x):
        h = self.conv(x)
        h = h * self.gate(h.mean((2, 3), keepdim=True))
        return self.fc(h.mean((2, 3)))


class ChangedInPlace(nn.Module):
    """A sigmoid's output changed in place after it: no longer the sigmoid's."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(*head())

    def forward(self, x):
        return torch.sigmoid(self.body(x)).mul_(4).sub_(2)


class Real(nn.Module):
    """A forward that reads a value (`.item()`): the real forward takes over from meta."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.soft = nn.Sequential(*head()), nn.Softmax(dim=1)

    def forward(self, x):
        scale = float(x.abs().max().item()) or 1.0
        return self.soft(self.body(x / scale))


FIRES = {
    "nn.Softmax": (lambda: nn.Sequential(*head(), nn.Softmax(1)), "layer 5 (Softmax)", "5"),
    "nn.Sigmoid": (lambda: nn.Sequential(*head(), nn.Sigmoid()), "layer 5 (Sigmoid)", "5"),
    "torch.sigmoid": (lambda: Ending(torch.sigmoid), "torch.sigmoid in the model's", "(model)"),
    "F.softmax": (lambda: Ending(lambda x: F.softmax(x, 1)), "F.softmax in the model's", "(model)"),
    "Tensor.softmax": (lambda: Ending(lambda x: x.softmax(-1)), "Tensor.softmax", "(model)"),
    "softmax then flatten": (
        lambda: nn.Sequential(*head(), nn.Softmax(1), nn.Flatten()),
        "layer 5 (Softmax)",
        "5",
    ),
    "real forward": (Real, "layer soft (Softmax)", "soft"),
    "F.sigmoid": (lambda: Ending(F.sigmoid), "F.sigmoid in the model's", "(model)"),
    "special.softmax": (
        lambda: Ending(lambda x: torch.special.softmax(x, 1)),
        "torch.special.softmax in the model's",
        "(model)",
    ),
    "special.expit": (lambda: Ending(torch.special.expit), "torch.special.expit in", "(model)"),
}

# casts and broadcasts after a softmax: train.guard's final_op passes their autograd nodes
# (ToCopy, Expand), so the lint does too
CASTS = {
    "double": lambda p: p.double(),
    "half": lambda p: p.half(),
    "bfloat16": lambda p: p.bfloat16(),
    "type": lambda p: p.type(torch.float64),
    "expand": lambda p: p.expand(3, -1, -1),
    "broadcast_to": lambda p: p.broadcast_to(3, *p.shape),
}


@pytest.mark.parametrize("which", CASTS)
def test_a_cast_or_broadcast_of_probabilities_fires_as_guard_sees_it(which: str) -> None:
    model = Ending(lambda z: CASTS[which](z.softmax(1)))
    assert final_op(model(torch.rand(2, 1, 8, 8))) == "softmax"  # the training check's truth
    lint = lints(model).get(CODE)
    assert lint is not None and "Tensor.softmax in the model's" in lint.message


def lints(model: nn.Module, size=(1, 8, 8)) -> dict:
    return {w.code: w for w in summary(model, size).warnings}


@pytest.mark.parametrize("which", FIRES)
def test_a_softmax_or_sigmoid_output_is_named_with_the_fix(which: str) -> None:
    make, where, layer = FIRES[which]
    lint = lints(make()).get(CODE)
    assert lint is not None and lint.layer == layer, lint
    assert where in lint.message
    assert "remove it" in lint.message and "softmax at prediction time" in lint.message


def test_the_bound_in_the_message_is_cross_entropy_of_the_best_probabilities() -> None:
    """One-hot probabilities are the best a softmax output can give: cross-entropy applies
    its own softmax to them, so its loss never falls below −ln(e/(e + n − 1))."""
    for n in (3, 10):
        lint = lints(nn.Sequential(*head(n), nn.Softmax(1)))[CODE]
        bound = float(re.search(r"= (\d\.\d\d) with these (\d+) outputs", lint.message)[1])
        best = F.one_hot(torch.tensor([0]), n).double()  # the perfect prediction of class 0
        loss = F.cross_entropy(best, torch.tensor([0]))
        assert math.exp(-loss.item()) == pytest.approx(bound, abs=0.005)
        assert math.exp(-loss.item()) == pytest.approx(math.e / (math.e + n - 1))


def test_the_summary_and_training_share_one_bound() -> None:
    """The lint's ceiling and the training note's loss floor are one formula: the floor is
    −ln of the ceiling, each torch's cross-entropy of one-hot probabilities."""
    for k in (2, 10, 1000):
        best = F.one_hot(torch.tensor([0]), k).double()
        loss = F.cross_entropy(best, torch.tensor([0])).item()
        assert probability_ceiling(k) == pytest.approx(math.exp(-loss), rel=1e-12)
        assert loss_floor(k) == -math.log(probability_ceiling(k))


def test_the_gradient_through_the_extra_softmax_is_squashed() -> None:
    """∂CE(softmax(z))/∂z is ∂CE/∂p times softmax's Jacobian: smaller than the logits'."""
    torch.manual_seed(0)
    z = (torch.randn(64, 10, dtype=torch.float64) * 3).requires_grad_()
    y = torch.randint(0, 10, (64,))
    (plain,) = torch.autograd.grad(F.cross_entropy(z, y), z)
    (twice,) = torch.autograd.grad(F.cross_entropy(z.softmax(1), y), z)
    assert twice.norm() < 0.5 * plain.norm()


def test_one_output_is_silent_its_cross_entropy_is_zero() -> None:
    """Linear(.., 1) + Sigmoid is nn.BCELoss's binary head: cross-entropy of one output is
    identically 0 (its softmax is 1), so no one trains it so."""
    z = torch.randn(5, 1, dtype=torch.float64)
    assert F.cross_entropy(z, torch.zeros(5, dtype=torch.long)).item() == 0.0
    assert F.cross_entropy(z.sigmoid(), torch.zeros(5, dtype=torch.long)).item() == 0.0
    assert CODE not in lints(nn.Sequential(*head(1), nn.Sigmoid()))


ONE_SOFTMAX = {
    "nn.Softmax": (lambda: nn.Sequential(*head(1), nn.Softmax(1)), "layer 5 (Softmax)"),
    "F.softmax": (lambda: Ending(lambda z: F.softmax(z, -1), 1), "F.softmax in the model's"),
    "softmax then flatten": (
        lambda: Ending(lambda z: z.unsqueeze(-1).softmax(1).flatten(1), 1),
        "Tensor.softmax in the model's",
    ),
}


@pytest.mark.parametrize("which", ONE_SOFTMAX)
def test_a_softmax_of_one_output_fires_its_output_is_constant(which: str) -> None:
    """A softmax over one value is exp(z)/exp(z) = 1: torch's output is all ones and its
    gradient all zeros, whatever the input, so no loss (BCE included) trains the model; the
    lint says so, where a sigmoid of one output (a BCE head) stays silent."""
    make, where = ONE_SOFTMAX[which]
    model = make()
    x = torch.randn(4, 1, 8, 8, requires_grad=True)
    out = model(x)
    assert out.shape == (4, 1) and torch.equal(out, torch.ones_like(out))
    (grad,) = torch.autograd.grad(F.binary_cross_entropy(out, torch.rand(4, 1)), x)
    assert not grad.any()
    lint = lints(model).get(CODE)
    assert lint is not None and where in lint.message, lint
    assert "= 1 whatever the input" in lint.message and "BCEWithLogitsLoss" in lint.message


def test_the_rule_reads_one_images_values_and_cross_entropys_classes() -> None:
    """On the trace's facts: one channel of H×W values ((B, 1, H, W), a sigmoid segmentation
    map or a softmax over its positions) is a BCE map, silent as the (B, 1) head (torch's
    cross-entropy over one channel is 0); a softmax that leaves one value per image is
    constant (all ones in torch); 3 channels fire with their 3 classes."""
    x = torch.randn(2, 1, 4, 4)
    assert F.cross_entropy(x.sigmoid(), torch.zeros(2, 4, 4, dtype=torch.long)).item() == 0.0
    assert torch.equal(x.flatten(1).mean(1, keepdim=True).softmax(1), torch.ones(2, 1))
    t = _trace_module(nn.Sequential(*head()), (1, 8, 8))

    def lint(made_by: str, classes: int, values: int) -> list:
        fact = OutputFact("5", made_by, True, classes, values)
        return probabilities_out(dataclasses.replace(t, probabilities=fact))

    assert lint("Sigmoid", 1, 64) == [] and lint("Softmax", 1, 64) == []
    assert lint("Sigmoid", 1, 1) == []
    assert "= 1 whatever the input" in lint("Softmax", 1, 1)[0].message
    assert "= 0.58 with these 3 outputs" in lint("Softmax", 3, 192)[0].message


def test_a_sigmoid_of_several_outputs_says_both_fixes() -> None:
    """A sigmoid of 10 outputs may be a multi-label head (BCE) or probabilities fed to
    cross-entropy: one message names the cross-entropy case and the multi-label fix; a
    softmax (no multi-label reading) does not."""
    for make in (lambda: nn.Sequential(*head(), nn.Sigmoid()), lambda: Ending(torch.sigmoid)):
        text = lints(make())[CODE].message
        assert "If it is trained with cross-entropy" in text
        assert "BCEWithLogitsLoss on the logits instead of the sigmoid and nn.BCELoss" in text
    softmax = lints(nn.Sequential(*head(), nn.Softmax(1)))[CODE].message
    assert "BCE" not in softmax and "If it is" not in softmax


SILENT = {
    "logits": lambda: nn.Sequential(*head()),
    "nn.LogSoftmax": lambda: nn.Sequential(*head(), nn.LogSoftmax(1)),
    "F.log_softmax": lambda: Ending(lambda x: F.log_softmax(x, 1)),
    "attention inside": Attention,
    "a gate's sigmoid": Gate,
    "changed in place": ChangedInPlace,
    "softmax then a layer": lambda: nn.Sequential(*head(), nn.Softmax(1), nn.Linear(10, 10)),
    # a container: which entry a loss reads is the caller's choice (the logits, here)
    "tuple (probs, logits)": lambda: Ending(lambda z: (z.softmax(1), z)),
    "tuple (logits, probs)": lambda: Ending(lambda z: (z, z.softmax(1))),
    "dict probs first": lambda: Ending(lambda z: {"probs": z.softmax(1), "logits": z}),
    "list [probs]": lambda: Ending(lambda z: [torch.sigmoid(z)]),
}


@pytest.mark.parametrize("which", SILENT)
def test_a_softmax_not_at_the_output_or_a_log_softmax_is_silent(which: str) -> None:
    assert CODE not in lints(SILENT[which]())


@pytest.mark.parametrize("preset", preset_names())
def test_the_presets_are_silent(preset: str) -> None:
    assert CODE not in {w.code for w in summary(preset).warnings}


def test_a_spec_ending_in_sigmoid_fires() -> None:
    spec = {
        "name": "probs",
        "input": [1, 8, 8],
        "layers": [{"conv": {"filters": 4, "kernel": 3}}, "relu", "gap", {"linear": 10}, "sigmoid"],
    }
    lint = {w.code: w for w in summary(spec).warnings}[CODE]
    assert "(Sigmoid)" in lint.message
