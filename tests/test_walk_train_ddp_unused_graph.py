"""DDP's unused-parameter search (`distributed.unused_parameters`, now `ddp_options` over
`fit.unreached_parameters`) ran torch.autograd.grad on the train-mode output: that fired the
user's parameter hooks (`p.register_hook`) once more, a side effect on their model (a hook
counting steps counted one step too many), and it raised at a reentrant
torch.utils.checkpoint ('not compatible with .grad()'), so a model with such a block and an
unused auxiliary head was said to have no unused parameter: DDP kept its default and failed
at the second step ('Expected to have finished reduction in the prior iteration'). It now
reads the forward's autograd graph, as the untrained-layer note does. Truth: a real
training-mode backward, after which exactly the unused parameters' .grad are None."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from cnnlab.train.distributed import ddp_options
from cnnlab.train.fit import unreached_parameters

pytestmark = pytest.mark.usefixtures("one_thread")


class AuxNet(nn.Module):
    """A reentrant-checkpointed block after a trainable stem, and an auxiliary head the
    training-mode output does not use."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.head, self.aux = nn.Linear(4, 10), nn.Linear(4, 10)

    def forward(self, x):
        h = checkpoint(self.block, self.stem(x), use_reentrant=True).mean((2, 3))
        return (self.head(h), self.aux(h))[0]


def _without_grad(model: nn.Module) -> list[str]:
    model.train()(torch.randn(4, 1, 8, 8)).sum().backward()
    return [n for n, p in model.named_parameters() if p.grad is None]


def test_the_search_fires_no_hook_of_the_users():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.ReLU(), nn.Linear(10, 10))
    calls = []
    for p in model.parameters():
        p.register_hook(lambda g: calls.append("grad") or g)
        p.register_post_accumulate_grad_hook(lambda p: calls.append("accumulated"))
    assert unreached_parameters(model, (1, 8, 8)) == [] and ddp_options(model, (1, 8, 8)) == {}
    assert calls == [] and all(p.grad is None for p in model.parameters())
    assert _without_grad(model) == []
    assert calls.count("grad") == calls.count("accumulated") == 4  # one backward: once each


def test_a_reentrant_checkpoint_does_not_hide_an_unused_head():
    torch.manual_seed(0)
    model = AuxNet()
    found = unreached_parameters(model, (1, 8, 8))
    assert all(p.grad is None for p in model.parameters())  # the search touched no .grad
    assert found == _without_grad(model) == ["aux.weight", "aux.bias"]
    assert ddp_options(model, (1, 8, 8)) == {"static_graph": True}  # reentrant: see wrap
