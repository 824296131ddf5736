"""Modules as people write them, through train, Ctrl-C, resume and reopening: a weight shared
by two layers (one Parameter, and one layer called twice), spectral norm and weight norm
parametrizations (`parametrizations.weight.original0`, spectral norm's `_u`/`_v` buffers
moved by every training forward), an integer step counter buffer, a frozen layer. Each is
checked against an independent truth: the module in memory, an uninterrupted run, a forward
computed here."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations

from cnnlab.train import TrainConfig, TrainingInterrupted, load_run, train
from cnnlab.train.checkpoint import load_checkpoint, load_weights

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = TrainConfig(epochs=2, batch_size=64, flip=False, tta=False, precision="fp32", erase=0.3)


class Kinds(nn.Module):
    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1).requires_grad_(False)  # frozen
        self.shared = nn.Conv2d(8, 8, 3, padding=1)  # called twice
        self.tied = nn.Conv2d(8, 8, 3, padding=1)
        self.tied.weight = self.shared.weight  # one Parameter in two layers
        self.norm = parametrizations.spectral_norm(nn.Conv2d(8, 8, 3, padding=1))
        self.drop = nn.Dropout(0.1)
        self.head = parametrizations.weight_norm(nn.Linear(8 * 8 * 8, 10))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.stop_at = stop_at

    def forward(self, x):
        if self.training:
            self.steps += 1
            if self.steps == self.stop_at:  # Ctrl-C in the middle of the second epoch
                os.kill(os.getpid(), signal.SIGINT)
        x = self.stem(x).relu()
        x = self.tied(self.shared(self.shared(x).relu()).relu()).relu()
        return self.head(self.drop(self.norm(x).relu()).flatten(1))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    torch.manual_seed(0)
    straight = Kinds()
    stem = straight.stem.weight.clone()
    result = train(straight, "digits", root / "straight", CONFIG)
    torch.manual_seed(0)
    with pytest.raises(TrainingInterrupted):
        train(Kinds(stop_at=27), "digits", root / "resumed", CONFIG)
    _, state = load_checkpoint(root / "resumed")
    assert (state["epoch"], state["step"]) == (1, 7)  # 20 steps an epoch: killed in epoch 2
    torch.manual_seed(5)  # a fresh instance's own weights: all are replaced by the checkpoint
    train(Kinds(), "digits", root / "resumed", resume=True)
    return root, straight, stem, result


def test_saved_weights_are_the_modules_and_a_resume_ends_bitwise_as_a_straight_run(runs):
    root, straight, stem, _ = runs
    saved = load_weights(root / "straight" / "model.safetensors")
    mine = straight.state_dict()
    assert saved.keys() == mine.keys()
    assert {"norm.parametrizations.weight.0._u", "head.parametrizations.weight.original0"} <= set(
        saved
    )
    for name, tensor in mine.items():
        assert torch.equal(saved[name], tensor), name
    assert (root / "straight" / "model.safetensors").read_bytes() == (
        root / "resumed" / "model.safetensors"
    ).read_bytes()
    assert torch.equal(straight.stem.weight, stem)  # frozen: unchanged through EMA and steps
    assert int(straight.steps) == 40  # one per training step, none for checks or evaluation


def test_a_fresh_instance_reopens_the_run_tied_and_scores_as_a_forward_computed_here(runs):
    root, straight, _, result = runs
    torch.manual_seed(9)
    run = load_run(root / "resumed", model=Kinds())
    assert run.model.tied.weight is run.model.shared.weight
    test = run.dataset("test")
    mean = torch.tensor(run.mean).view(1, -1, 1, 1)
    std = torch.tensor(run.std).view(1, -1, 1, 1)
    with torch.no_grad():
        right = straight.eval()((test.images / 255 - mean) / std).argmax(1) == test.labels
    assert result["test_acc"] == int(right.sum()) / len(right)
