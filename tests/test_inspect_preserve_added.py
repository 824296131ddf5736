"""`preserved(model)` leaves no buffer, parameter, submodule or attribute that a forward in
the block added (a step counter the model registers at its first train-mode call): it
restores what existed and removes what is new. A counter created by a check forward read
11 after 10 training steps. Truth: the same model trained without any check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.inspect import preserved

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


class LazyCounter(nn.Module):
    """Counts its train-mode forwards in a buffer it registers at the first one, and caches
    its last input's size as a plain attribute."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if self.training:
            if "steps" not in self._buffers:
                self.register_buffer("steps", torch.zeros((), dtype=torch.long))
            self.steps += 1
        self.seen = x.shape[0]
        return self.fc(x)


def _train(model: nn.Module, steps: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(1)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(8, 4)).sum().backward()
        opt.step()


@pytest.mark.parametrize("train", [True, False])
def test_a_check_forward_leaves_nothing_it_added(train):
    torch.manual_seed(0)
    model, plain = LazyCounter(), LazyCounter()
    plain.load_state_dict(model.state_dict())
    with preserved(model, train=train), torch.no_grad():
        model(torch.randn(2, 4))
    assert "steps" not in model._buffers and not hasattr(model, "seen")
    assert model.state_dict().keys() == plain.state_dict().keys()
    _train(model, 10)
    _train(plain, 10)
    assert int(model.steps) == int(plain.steps) == 10  # it read 11
    assert torch.equal(model.fc.weight, plain.fc.weight)


def test_what_existed_is_kept():
    model = LazyCounter()
    _train(model, 3)
    with preserved(model, train=True), torch.no_grad():
        model(torch.randn(2, 4))
    assert int(model.steps) == 3 and hasattr(model, "seen")  # restored, not removed
