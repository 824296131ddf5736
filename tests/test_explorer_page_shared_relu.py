"""The deep-layer panel of a block whose activation module is called again by a later block
(one nn.ReLU shared, as torchvision's ResNet blocks share theirs): the activation
maximisation answers for the call that ends the block, `relu` (the ReLU's first call; the
server optimises any call). Truth: the chain the explorer finds (conv c1, BatchNorm b1, the
ReLU's first call)."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.train.rundir import Run
from explorer_runs import explorer_page, wait_until

ACTMAX = "document.querySelector('#actmax p')?.textContent || ''"


class SharedReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.c2, self.b2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        h = self.relu(self.b1(self.c1(x)))
        h = self.relu(self.b2(self.c2(h)) + h)
        return self.fc(h.mean((2, 3)))


def test_actmax_of_a_block_ending_at_a_shared_relus_first_call_is_the_layer_shown(tmp_path):
    torch.manual_seed(0)
    config = {"data": None, "classes": ["a", "b"], "mean": [0.5], "std": [0.25]}
    run = Run(tmp_path, None, SharedReLU().eval(), {**config, "input_shape": [1, 12, 12]})
    with explorer_page(run) as (page, problems):
        page.evaluate("state.featureLayer = 'c1'; state.channel = 1")
        page.evaluate("loadActmax()")  # the button of the panel, without an image shown
        wait_until(
            page,
            f"({ACTMAX}).includes('its centre unit') || document.querySelector('#actmax p.bad')",
            timeout=120,
        )
        said = page.evaluate(ACTMAX)
    assert said.startswith("relu channel 1: "), said  # the block's end, not its conv
    assert not problems, problems
