"""A torch.compile'd module, the model or a child of it, is summarized as the module it
wraps: the compiled forward runs its graph where no Python sees the calls (compiling is
lazy: nothing is compiled here)."""

from __future__ import annotations

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


def test_a_compiled_child_is_summarized_as_the_module_it_wraps_named_as_the_plain_model():
    """`model.block = torch.compile(block)`: the trace calls the wrapped module (the compiled
    forward failed inside dynamo). Rows are named as the plain model names its layers
    ('1.0', not '1._orig_mod.0': the name the CLI, which opens the model decompiled, and
    every command that opens a run give it); the rest equals the summary of the same model
    uncompiled, and torchinfo's totals."""
    block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    plain = nn.Sequential(nn.Conv2d(3, 3, 1), block, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = nn.Sequential(nn.Conv2d(3, 3, 1), torch.compile(block), nn.AdaptiveAvgPool2d(1))
    model.add_module("3", torch.compile(nn.Flatten()))  # a compiled leaf
    got, want = summary(model, (3, 8, 8)), summary(plain, (3, 8, 8))
    assert [r.name for r in got.rows] == ["0", "1.0", "1.1", "1.2", "2", "3"]
    assert got == want  # names included: the plain model's own
    theirs = torchinfo.summary(model, (1, 3, 8, 8), verbose=0)
    assert got.total_params == theirs.total_params == want.total_params
    assert got.total_macs == want.total_macs == theirs.total_mult_adds
    assert model[1]._orig_mod[1].training  # the user's module is left as it was


def test_rows_under_compiled_children_are_named_as_in_the_decompiled_model():
    """Compiled children at two depths, one inside another: each row's name is the
    name `inspect.preserve.decompiled` (what the CLI summarizes) gives that layer, and names
    a module of it; lints name the same layers."""
    from cnnlab.inspect.preserve import decompiled

    def make() -> nn.Module:
        torch.manual_seed(0)
        head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 6 * 6, 4), nn.Linear(4, 2))
        stem = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        return nn.Sequential(stem, nn.Sequential(nn.Identity(), head))

    model = make()
    model[0] = torch.compile(model[0])
    model[1][1] = torch.compile(model[1][1])
    model[1] = torch.compile(model[1])  # its layers are 1._orig_mod.1._orig_mod.0, ...
    assert "1._orig_mod.1._orig_mod.2" in dict(model.named_modules())
    got, want = summary(model, (3, 8, 8)), summary(decompiled(make()), (3, 8, 8))
    names = [r.name for r in got.rows]
    assert names == [r.name for r in want.rows] and not any("_orig_mod" in n for n in names)
    assert set(names) <= set(dict(decompiled(make()).named_modules()))
    assert got == want  # rows, totals and the lints, which name layers too
