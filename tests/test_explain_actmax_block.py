"""Activation maximisation of a block that ends in its ReLU (a stage of Hugging Face's
ResNet, a residual block) ascends that ReLU's input, as it does for the ReLU named itself: a
channel zero everywhere on the start images got no gradient at the block's output and stayed
at 0 ('channel 11: activation 0, best of 359 test images 1.77: 0.00x')."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.explain import activation_maximization


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
        with torch.no_grad():  # channel 1: 9·x − 8, below 0 unless its 9 pixels near 1
            self.block.conv.weight.fill_(1.0)
            self.block.conv.bias.copy_(torch.tensor([0.0, -8.0]))

    def forward(self, x):
        return self.head(self.block(x))


def _act(layer):
    torch.manual_seed(0)
    model = Net().eval()
    found = activation_maximization(
        model, layer, [1], steps=40, input_size=(1, 5, 5), value_range=(0.0, 1.0), restarts=2
    )
    return found.activation[0].item()


def test_a_block_ending_in_its_relu_is_ascended_at_that_relu_s_input():
    at_relu = _act("block.act")
    assert at_relu > 0.5  # the pixels of its centre window pushed towards 1
    assert abs(_act("block") - at_relu) < 1e-6


def test_a_block_whose_output_is_not_its_activation_s_is_read_at_its_output():
    from cnnlab.explain.actmax import ascent_target

    class After(Block):
        def forward(self, x):
            return self.act(self.conv(x)) + 1.0

    model = nn.Sequential(After())
    assert ascent_target(model, "0", torch.rand(2, 1, 5, 5), None) == ("0", False)
    assert ascent_target(model, "0.act", torch.rand(2, 1, 5, 5), None) == ("0.act", True)
