"""A model trained in plain PyTorch style with a frozen stem and activation checkpointing
(`torch.utils.checkpoint(block, x, use_reentrant=True)`): the block's input needs no
gradient, so the reentrant checkpoint hands its parameters none and the block keeps its
first weights through every step. `cnnlab train` said nothing (torch's warning alone), and
the run looked trained. It now notes the layers that get no gradient and the fix, read from
the forward's autograd graph (no backward: a hook of the user's would count it). Truth:
torch's own backward gives those parameters no gradient, and their weights stay as made."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from cnnlab.train import TrainConfig, train

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad"),
]

CONFIG = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")


class Net(nn.Module):
    def __init__(self, reentrant: bool, frozen: bool = True) -> None:
        super().__init__()
        self.reentrant = reentrant
        self.stem = nn.Conv2d(1, 4, 3, padding=1).requires_grad_(not frozen)  # pretrained
        self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        x = checkpoint(self.block, self.stem(x).relu(), use_reentrant=self.reentrant)
        return self.head(x.mean((2, 3)))


def test_a_block_cut_off_by_a_reentrant_checkpoint_is_named():
    torch.manual_seed(0)
    model = Net(reentrant=True)
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    assert model.block[0].weight.grad is None and model.head.weight.grad is not None
    model.zero_grad(set_to_none=True)
    first = model.block[0].weight.detach().clone()
    result = train(model, "digits", None, CONFIG)
    assert torch.equal(model.block[0].weight, first)  # it did not train
    said = [n for n in result["notes"] if "no gradient" in n]
    assert len(said) == 1 and "block.0 gets no gradient" in said[0]
    assert "use_reentrant=False" in said[0] and "head" not in said[0]


@pytest.mark.parametrize(("reentrant", "frozen"), [(False, True), (True, False)])
def test_no_note_where_every_layer_trains(reentrant, frozen):
    """A non-reentrant checkpoint, or a reentrant one whose input needs a gradient (its
    parameters are not in the forward's graph: the backward recomputes the block)."""
    torch.manual_seed(0)
    model = Net(reentrant, frozen)
    first = model.block[0].weight.detach().clone()
    result = train(model, "digits", None, CONFIG)
    assert not torch.equal(model.block[0].weight, first)  # it trained
    assert not [n for n in result["notes"] if "no gradient" in n]
