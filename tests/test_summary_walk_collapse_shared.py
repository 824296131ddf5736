"""linear-collapse on a pair whose first or second layer is called elsewhere too: W2(W1 x)
is one linear map only where W1 and W2 serve that one use. A module applied to two inputs (a
shared projection, a weight-tied head) keeps its weights for its other use, so the pair is no
one layer to merge: the lint told to 'use one layer' where one layer cannot replace the two.
Truth, on torch's outputs: the merged Linear (W2·W1, W2·b1 + b2) reproduces the pair's use
and not the shared layer's other one."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab import summary


class Shared(nn.Module):
    """fc1 then fc2 with nothing between; fc2 also reads the activated features."""

    def __init__(self, shared: bool) -> None:
        super().__init__()
        self.shared = shared
        self.conv = nn.Conv2d(3, 32, 3, 2, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(32, 32)
        self.fc2 = nn.Linear(32, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        f = self.pool(torch.relu(self.conv(x))).flatten(1)
        y = self.fc2(self.fc1(f))
        if self.shared:
            y = y + self.fc2(torch.relu(f))
        return self.head(torch.relu(y))


class SharedFirst(nn.Module):
    """fc2(fc1(f)), and fc1 again on 2f, activated: the pair's first layer has another use."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, 2, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(32, 32)
        self.fc2 = nn.Linear(32, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        f = self.pool(torch.relu(self.conv(x))).flatten(1)
        y = self.fc2(self.fc1(f)) + self.fc1(2 * f).relu()
        return self.head(torch.relu(y))


def collapse(model: nn.Module) -> list[str]:
    return [w.layer for w in summary(model, (3, 16, 16)).warnings if w.code == "linear-collapse"]


def test_a_pair_whose_second_layer_serves_another_use_is_no_one_map():
    model = Shared(shared=True).eval()
    assert collapse(model) == []
    # fc2 is still needed for its other input: merging fc1 into it changes that use
    f = torch.randn(64, 32)
    merged = nn.Linear(32, 32)
    with torch.no_grad():
        merged.weight.copy_(model.fc2.weight @ model.fc1.weight)
        merged.bias.copy_(model.fc2.weight @ model.fc1.bias + model.fc2.bias)
        assert torch.allclose(merged(f), model.fc2(model.fc1(f)), atol=1e-5)  # this use
        assert not torch.allclose(merged(torch.relu(f)), model.fc2(torch.relu(f)), atol=1e-3)


def test_the_same_pair_used_once_still_collapses():
    assert collapse(Shared(shared=False).eval()) == ["fc2"]


def test_a_pair_whose_first_layer_serves_another_use_is_no_one_map():
    model = SharedFirst().eval()
    assert collapse(model) == []
    # fc1 is still needed for its other input: the merged layer stands in for the pair only
    f = torch.randn(64, 32)
    merged = nn.Linear(32, 32)
    with torch.no_grad():
        merged.weight.copy_(model.fc2.weight @ model.fc1.weight)
        merged.bias.copy_(model.fc2.weight @ model.fc1.bias + model.fc2.bias)
        assert torch.allclose(merged(f), model.fc2(model.fc1(f)), atol=1e-5)  # this use
        assert not torch.allclose(merged(2 * f).relu(), model.fc1(2 * f).relu(), atol=1e-3)
