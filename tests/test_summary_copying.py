"""The copy summary traces (`copying.py`): whatever a forward does to its module's own
attributes stays in the copy, however the copy decided to share or copy each one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.design.summary.copying import _atomic_items


class Writer(nn.Module):
    """A layer whose forward writes into its list attributes and their items."""

    def __init__(self, values: list) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.values = values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.values.append(len(self.values))
        for item in self.values:
            if isinstance(item, list):
                item.append("written")
        return self.conv(x)


@pytest.mark.parametrize(
    "values",
    [
        list(range(200)),  # long and of one atomic type: shallow-copied
        [*range(200), 0.5, "a", None, True],  # long, several atomic types
        [*range(200), []],  # long, all ints but the last, which is mutable
        [[], *range(200)],  # the first mutable
        [1, []],  # short
    ],
    ids=["ints", "atomic-mix", "mutable-last", "mutable-first", "short"],
)
def test_a_forward_writing_its_lists_leaves_the_users_lists_as_they_were(values):
    model = Writer(values)
    before = repr(values)
    summary(model, (3, 8, 8))
    assert model.values is values and repr(values) == before


@pytest.mark.parametrize(
    ("values", "atomic"),
    [
        ([], True),
        ((3, 3), True),
        (list(range(100)), True),
        ([*range(100), 1.5, "x", b"y", None, False, 2j, torch.float16, torch.device("cpu")], True),
        ([*range(100), []], False),
        ([(), *range(100)], False),
        ({*range(100), frozenset()}, False),
        ([*range(100), torch.zeros(1)], False),
    ],
)
def test_atomic_items_is_true_only_where_every_item_is_immutable(values, atomic):
    assert _atomic_items(values) is atomic


class DictWriter(nn.Module):
    """A layer whose forward writes into its dict attributes and their values."""

    def __init__(self, table: dict) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.table = table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.table["seen"] = True
        for value in self.table.values():
            if isinstance(value, list):
                value.append("written")
        return self.conv(x)


@pytest.mark.parametrize(
    "table",
    [{}, {"a": 1, 2: "b", None: 0.5}, {"a": []}, {"a": 1, (): 2}, {"k": (1, [])}],
    ids=["empty", "atomic", "mutable-value", "tuple-key", "tuple-with-list"],
)
def test_a_forward_writing_its_dicts_leaves_the_users_dicts_as_they_were(table):
    model = DictWriter(table)
    before = repr(table)
    summary(model, (3, 8, 8))
    assert model.table is table and repr(table) == before
