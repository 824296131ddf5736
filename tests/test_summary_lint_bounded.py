"""bounded-scores: class scores that come out of a tanh lie in [−1, 1], so softmax gives no
class more than e²/(e² + K − 1) (45.1 % at K = 10; MONAI's ViT ends its head in nn.Tanh).
Fires on a final nn.Tanh, nn.Hardtanh, torch.tanh, F.tanh, Tensor.tanh and on a tuple's first
entry; silent on a tanh before the final Linear, a sigmoid (probabilities-out's), one score
and a map. Truths: torch's softmax of the extreme scores (one +1, the rest −1), of a real
forward whose tanh saturates, and train.guard.tanh_ceiling, the note training gives."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.train.guard import tanh_ceiling

pytestmark = pytest.mark.usefixtures("one_thread")

CODE = "bounded-scores"
SIZE = (3, 4, 4)


def lints(model: nn.Module) -> dict:
    return {w.code: w for w in summary(model, SIZE).warnings}


def head(k: int = 10, *after: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(48, k), *after)


class Function(nn.Module):
    """A forward that ends in a function of the scores: torch.tanh, F.tanh, Tensor.tanh."""

    def __init__(self, end) -> None:
        super().__init__()
        self.fc, self.end = nn.Linear(48, 10), end

    def forward(self, x):
        return self.end(self.fc(x.flatten(1)))


class Pair(nn.Module):
    """MONAI's ViT's way: (scores out of nn.Tanh, hidden states)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.act = nn.Linear(48, 10), nn.Tanh()

    def forward(self, x):
        h = self.fc(x.flatten(1))
        return self.act(h), [h]


@pytest.mark.parametrize("k", [2, 10, 1000])
def test_a_final_tanh_fires_with_the_ceiling_torch_computes(k: int) -> None:
    lint = lints(head(k, nn.Tanh())).get(CODE)
    assert lint is not None and lint.layer == "2"
    extreme = torch.tensor([1.0] + [-1.0] * (k - 1), dtype=torch.float64)
    top = float(extreme.softmax(0)[0])  # the highest a class reaches with scores in [−1, 1]
    assert top == pytest.approx(tanh_ceiling(k), rel=1e-12)
    assert f"e²/(e² + {k - 1}) = {top:.1%}" in lint.message
    assert f"cannot fall below {-math.log(top):.3f}" in lint.message
    assert "layer 2 (Tanh)" in lint.message and "drop the final Tanh" in lint.message
    assert "nn.CrossEntropyLoss" in lint.message


def test_a_saturated_tanh_reaches_the_ceiling_and_no_further() -> None:
    model = head(10, nn.Tanh())
    with torch.no_grad():
        model[1].weight.mul_(1e4)  # saturated scores, ±1 at random
        assert model(torch.randn(64, *SIZE)).softmax(1).max() <= tanh_ceiling(10) + 1e-6
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([100.0] + [-100.0] * 9))  # one class +1, the rest −1
        top = model(torch.randn(1, *SIZE)).softmax(1).max()
    assert float(top) == pytest.approx(tanh_ceiling(10), rel=1e-6)  # 45.1 %


@pytest.mark.parametrize(
    "end", [torch.tanh, F.tanh, torch.Tensor.tanh], ids=["torch.tanh", "F.tanh", "Tensor.tanh"]
)
def test_a_tanh_function_in_the_forward_fires_on_that_forward(end) -> None:
    lint = lints(Function(end)).get(CODE)
    assert lint is not None and lint.layer == "(model)"
    assert "the model's forward" in lint.message and "45.1%" in lint.message


def test_a_hardtanh_a_hardsigmoid_and_a_tuple_output_fire() -> None:
    assert "45.1%" in lints(head(10, nn.Hardtanh()))[CODE].message  # [−1, 1] by default
    hard = lints(head(10, nn.Hardsigmoid()))[CODE]  # [0, 1]: e/(e + 9)
    assert f"{float(torch.tensor([1.0] + [0.0] * 9).softmax(0)[0]):.1%}" in hard.message
    assert lints(Pair())[CODE].layer == "act"


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.5), (-0.5, 2.0), (-2.0, 2.0)])
def test_a_hardtanh_fires_with_its_own_bounds(low: float, high: float) -> None:
    """Its min_val and max_val, not the default [−1, 1]: the ceiling torch's softmax gives
    the extreme scores (one at max_val, the rest at min_val)."""
    lint = lints(head(10, nn.Hardtanh(low, high)))[CODE]
    top = float(torch.tensor([high] + [low] * 9, dtype=torch.float64).softmax(0)[0])
    assert f"between {low:g} and {high:g}:" in lint.message and f"{top:.1%}" in lint.message


def test_silent_where_the_bounds_cap_nothing_a_classifier_feels() -> None:
    """nn.Hardtanh(-5, 5) over 10 classes caps softmax at 99.96 %; over 1,000 at 95.7 %."""
    assert CODE not in lints(head(10, nn.Hardtanh(-5.0, 5.0)))
    extreme = torch.tensor([5.0] + [-5.0] * 999, dtype=torch.float64).softmax(0)[0]
    assert f"{float(extreme):.1%}" in lints(head(1000, nn.Hardtanh(-5.0, 5.0)))[CODE].message


@pytest.mark.parametrize(
    "model",
    [
        head(10, nn.Tanh(), nn.Linear(10, 10)),  # a tanh before the final Linear: logits
        head(10, nn.Tanh(), nn.BatchNorm1d(10)),  # rescaled after it
        head(1, nn.Tanh()),  # one score: no softmax over classes
        nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Tanh()),  # an image (a generator's)
        Function(lambda z: 5 * torch.tanh(z)),  # scaled: its bound is not the tanh's
    ],
    ids=["tanh-linear", "tanh-batchnorm", "one-score", "map", "scaled"],
)
def test_silent_where_the_scores_are_not_a_tanhs(model) -> None:
    assert CODE not in lints(model)


def test_a_sigmoid_is_probabilities_out_alone() -> None:
    found = lints(head(10, nn.Sigmoid()))
    assert "probabilities-out" in found and CODE not in found


def test_monai_vit_fires_on_its_classification_head() -> None:
    pytest.importorskip("monai")
    from test_summary_zoo import make

    model, size = make("monai-vit")
    lint = {w.code: w for w in summary(model, size).warnings}[CODE]
    assert lint.layer == "classification_head.1" and "45.1%" in lint.message
