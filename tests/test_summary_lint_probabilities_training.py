"""probabilities-out on a model that returns probabilities in eval mode only: cross-entropy
trains on what training mode returns. Truth: the model's own outputs in each mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.design.summary import summary

pytestmark = pytest.mark.usefixtures("one_thread")

CODE = "probabilities-out"


class Net(nn.Module):
    """A GAP classifier whose forward ends as `when` says: softmax in eval mode only (the
    common inference-time softmax), or always."""

    def __init__(self, when: str, norm: nn.Module | None = None) -> None:
        super().__init__()
        self.conv, self.fc, self.when = nn.Conv2d(1, 4, 3), nn.Linear(4, 10), when
        self.norm = norm or nn.Identity()

    def forward(self, x):
        z = self.fc(self.norm(self.conv(x).mean((2, 3))))
        return z.softmax(1) if self.when == "always" or not self.training else z


def codes(model: nn.Module) -> set[str]:
    return {w.code for w in summary(model, (1, 8, 8)).warnings}


def row_sums(model: nn.Module, training: bool) -> torch.Tensor:
    model.train(training)
    return model(torch.randn(4, 1, 8, 8)).detach().sum(1)


def test_a_softmax_in_eval_mode_only_is_silent_since_training_sees_logits():
    model = Net("eval")
    assert not torch.allclose(row_sums(model, True), torch.ones(4))  # logits in training
    assert torch.allclose(row_sums(model, False), torch.ones(4))
    assert CODE not in codes(model.eval()) and CODE not in codes(model.train())


def test_a_softmax_that_training_sees_too_fires():
    model = Net("always")
    assert torch.allclose(row_sums(model, True), torch.ones(4))
    assert CODE in codes(model.eval())


def test_a_model_that_cannot_run_one_image_in_training_keeps_the_lint():
    """BatchNorm1d refuses a batch of one value per channel in training mode: the second
    trace tells nothing, and the eval-mode finding stands."""
    model = Net("always", nn.BatchNorm1d(4))
    with pytest.raises(ValueError, match="more than 1 value"):
        model.train()(torch.randn(1, 1, 8, 8))
    assert CODE in codes(model.eval())
