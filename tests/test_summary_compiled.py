"""A torch.compile'd module, the model or a child of it, is summarized as the module it
wraps: the compiled forward runs its graph where no Python sees the calls (compiling is
lazy: nothing is compiled here)."""

from __future__ import annotations

import dataclasses

import torch
import torchinfo
from torch import nn

from cnnlab.design.summary import summary


def test_a_compiled_module_is_summarized_as_the_module_it_wraps():
    """torch.compile's wrapper runs its graph where no Python sees the calls: the summary
    is the wrapped module's, rows named as in it, totals as torchinfo counts the original
    (compiling is lazy: nothing is compiled here)."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 3),
    )  # fmt: skip
    compiled = torch.compile(model)
    got, want = summary(compiled, (1, 8, 8)), summary(model, (1, 8, 8))
    assert got == want and [r.name for r in got.rows] == ["0", "1", "2", "3", "4", "5"]
    theirs = torchinfo.summary(model, (1, 1, 8, 8), verbose=0)
    assert got.total_params == theirs.total_params and got.total_macs == theirs.total_mult_adds


def test_a_compiled_child_is_summarized_as_the_module_it_wraps_named_as_named_modules():
    """`model.block = torch.compile(block)`: the trace calls the wrapped module (the compiled
    forward failed inside dynamo). Rows are named as model.named_modules() names them,
    'block._orig_mod.0' (the wrapper holds the module as `_orig_mod`; torchinfo shows that
    level too, an OptimizedModule with the Sequential under it), so each row's name finds
    its module; the rest equals the summary of the same model uncompiled, and torchinfo's
    totals."""
    block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    plain = nn.Sequential(nn.Conv2d(3, 3, 1), block, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = nn.Sequential(nn.Conv2d(3, 3, 1), torch.compile(block), nn.AdaptiveAvgPool2d(1))
    model.add_module("3", torch.compile(nn.Flatten()))  # a compiled leaf
    got, want = summary(model, (3, 8, 8)), summary(plain, (3, 8, 8))
    names = ["0", "1._orig_mod.0", "1._orig_mod.1", "1._orig_mod.2", "2", "3._orig_mod"]
    modules = dict(model.named_modules())
    assert [r.name for r in got.rows] == names and all(n in modules for n in names)
    assert [dataclasses.replace(r, name="") for r in got.rows] == [
        dataclasses.replace(r, name="") for r in want.rows
    ]
    theirs = torchinfo.summary(model, (1, 3, 8, 8), verbose=0)
    assert got.total_params == theirs.total_params == want.total_params
    assert got.total_macs == want.total_macs == theirs.total_mult_adds
    assert model[1]._orig_mod[1].training  # the user's module is left as it was
