"""The theoretical field of a container's N-th call (`block #2`) is that call's: a block called
twice back to back, or whose first layer runs twice in one call, was found as the N-th run of
its layers' rows in the summary, and back-to-back calls make one run (`block` got the second
call's field, `block #2` none, its field then measured from the gradient's support).

Truth: the field by hand (`geometry.rf_step` of each 3×3 conv, padding 1, in order), the
summary's row of the call's last layer, and the non-zero support of the gradient autograd
gives at the call's centre unit. A torch.compile'd block's rows are named as in the plain
model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab import explain, geometry
from cnnlab.explain.erf import support_side

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


class Pair(nn.Module):
    """A conv called twice, then a ReLU: its first layer runs twice in one call."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu = nn.Conv2d(3, 3, 3, padding=1), nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(self.conv(x)))


class Twice(nn.Module):
    """`block` called twice back to back (`between`: a 3×3 conv between the calls), a head."""

    def __init__(self, block: nn.Module, between: bool = False):
        super().__init__()
        self.block = block
        self.mid = nn.Conv2d(3, 3, 3, padding=1) if between else None  # no call between
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))

    def forward(self, x):
        x = self.block(x)
        if self.mid is not None:
            x = self.mid(x)
        return self.head(self.block(x))


def by_hand(convs: int) -> int:
    """The field after `convs` 3×3 convs of padding 1 (§3.2)."""
    rf = geometry.INPUT_RF
    for _ in range(convs):
        rf = geometry.rf_step(rf, 3, 1, 1)
    return rf.size


CASES = {  # model, the block's last layer, (convs before the end of each call)
    "sequential back to back": (lambda: Twice(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1),
                                                           nn.ReLU())), "block.1", (1, 2)),
    "first layer twice in a call": (lambda: Twice(Pair()), "block.relu", (2, 4)),
    "a conv between the calls": (lambda: Twice(Pair(), between=True), "block.relu", (2, 5)),
    # its modules `block._orig_mod.0`, ... are the summary's `block.0`, ...
    "torch.compile'd, back to back": (lambda: Twice(torch.compile(nn.Sequential(
        nn.Conv2d(3, 3, 3, padding=1), nn.ReLU()))), "block.1", (1, 2)),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_each_call_of_a_block_has_its_own_field(case):
    make, last, convs = CASES[case]
    torch.manual_seed(0)
    model = make().eval()
    rows = {(r.name, r.call): r.receptive_field for r in cnnlab.summary(model, (3, 16, 16)).rows}
    for call, (label, n) in enumerate(zip(["block", "block #2"], convs, strict=True), 1):
        erf = explain.effective_receptive_field(model, label, (3, 16, 16), n=4)
        assert erf.theoretical == by_hand(n) == rows[(last, call)], label
        assert erf.theoretical_source == "cnnlab.summary"
        assert support_side(erf.gradient) == erf.theoretical  # autograd's field of that call
