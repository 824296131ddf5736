"""`preserved(model)` undoes what a forward in the block did to a buffer it registered (a
step counter the model registers at its first train-mode call), as it restores the buffers
that existed: the buffer stays (a run's weights may hold it), with the value it was
registered with. A counter created by a check forward read 11 after 10 training steps.
Truth: the same model trained without any check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.inspect import preserved

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


class LazyCounter(nn.Module):
    """Counts its train-mode forwards in a buffer it registers at the first one."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if self.training:
            if "steps" not in self._buffers:
                self.register_buffer("steps", torch.zeros((), dtype=torch.long))
            self.steps += 1
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
    if train:  # made, and kept at the value it was registered with
        assert int(model.steps) == 0
    _train(model, 10)
    _train(plain, 10)
    assert int(model.steps) == int(plain.steps) == 10  # it read 11
    assert torch.equal(model.fc.weight, plain.fc.weight)


def test_what_existed_is_kept():
    model = LazyCounter()
    _train(model, 3)
    with preserved(model, train=True), torch.no_grad():
        model(torch.randn(2, 4))
    assert int(model.steps) == 3  # restored


class Counted(nn.Module):
    """LazyCounter's counter on a conv net; `backwards` counts the backward passes, the
    training steps."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4, 10),
        )  # fmt: skip
        self.backwards = [0]
        self.body[0].weight.register_hook(lambda g: self.backwards.append(1))

    def forward(self, x):
        if self.training:
            if "steps" not in self._buffers:
                self.register_buffer("steps", torch.zeros((), dtype=torch.long))
            self.steps += 1
        return self.body(x)


def test_training_counts_its_steps_only():
    from cnnlab.train import TrainConfig, train

    torch.manual_seed(0)
    model = Counted()
    config = TrainConfig(epochs=1, batch_size=64, precision="fp32", flip=False, tta=False)
    train(model, "digits", None, config)
    assert int(model.steps) == len(model.backwards) - 1 > 0  # one more before: 21 for 20
