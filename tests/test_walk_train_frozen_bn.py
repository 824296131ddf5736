"""A BatchNorm the model keeps in eval mode in its own `train()` (a frozen backbone's, the
usual PyTorch way of freezing its statistics) never changes in training; the statistics
recomputed after training (norm_stats.py) are those of the layers training does update, so
the frozen layer keeps, bit for bit, the statistics it was given."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.train import TrainConfig, load_run, train
from cnnlab.train.checkpoint import load_weights
from cnnlab.train.norm_stats import recalibrate

pytestmark = pytest.mark.usefixtures("one_thread")


class FrozenBackbone(nn.Module):
    """A 'pretrained' stem, frozen: no gradient, its BatchNorm held in eval by train()."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
        )  # fmt: skip
        self.stem.requires_grad_(False)
        with torch.no_grad():  # statistics of its own, as a pretrained layer has
            self.stem[1].running_mean.uniform_(-1, 1)
            self.stem[1].running_var.uniform_(0.5, 2.0)

    def train(self, mode: bool = True):
        super().train(mode)
        self.stem.eval()
        return self

    def forward(self, x):
        return self.head(self.stem(x))


def test_recalibration_leaves_a_bn_the_models_train_mode_keeps_in_eval():
    """Truth: the statistics it was given, and torch's own train-mode update of the head's
    BatchNorm (a plain model.train() forward with momentum None over one batch)."""
    torch.manual_seed(0)
    net = FrozenBackbone().eval()
    given = {k: v.clone() for k, v in net.stem.state_dict().items()}
    images = torch.randn(32, 1, 8, 8)
    assert recalibrate(net, images, 32) == 1
    for name, tensor in net.stem.state_dict().items():
        assert torch.equal(tensor, given[name]), name
    reference = FrozenBackbone()
    reference.load_state_dict({**net.state_dict(), **{f"stem.{k}": v for k, v in given.items()}})
    reference.train()
    reference.head[1].reset_running_stats()
    reference.head[1].momentum = None
    with torch.no_grad():
        reference(images)
    torch.testing.assert_close(net.head[1].running_mean, reference.head[1].running_mean)
    torch.testing.assert_close(net.head[1].running_var, reference.head[1].running_var)
    assert not net.training and not net.head[1].training


def test_a_trained_frozen_backbone_keeps_its_statistics_in_the_run(tmp_path):
    torch.manual_seed(0)
    net = FrozenBackbone()
    given = {k: v.clone() for k, v in net.stem.state_dict().items()}
    config = TrainConfig(epochs=1, batch_size=64, flip=False, tta=False, precision="fp32")
    train(net, "digits", tmp_path / "run", config)
    saved = load_weights(tmp_path / "run" / "model.safetensors")
    for name, tensor in given.items():
        assert torch.equal(net.stem.state_dict()[name], tensor), name
        assert torch.equal(saved[f"stem.{name}"], tensor), name
    torch.manual_seed(1)
    reopened = load_run(tmp_path / "run", model=FrozenBackbone()).model
    assert torch.equal(reopened.stem[1].running_var, given["1.running_var"])


def test_a_bn_of_momentum_zero_keeps_its_statistics():
    """Truth: torch's own train-mode forward, which leaves a momentum-0 BatchNorm's running
    statistics as they were (running = 1·running + 0·batch); recalibration does the same."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, momentum=0.0), nn.BatchNorm2d(4))
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
    given = net[1].running_mean.clone()
    images = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        net.train()(images)
    assert torch.equal(net[1].running_mean, given)  # torch: training never changes it
    assert recalibrate(net.eval(), images, 16) == 1
    assert torch.equal(net[1].running_mean, given) and net[1].momentum == 0.0
