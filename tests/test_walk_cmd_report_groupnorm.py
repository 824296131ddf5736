"""The report's feature maps of a net normalized with GroupNorm / InstanceNorm, no BatchNorm
(conv -> GroupNorm -> ReLU): each block's map is its activation's, as a BatchNorm net's is.
The conv's raw output was taken for a block's end too (only a BatchNorm after it counted as
the block going on), two rows per block in the figure. Truth: forward hooks on the model,
the map the next block's conv (or the head's pool) reads."""

from __future__ import annotations

import torch

from cnnlab.report.sources import Budget, Sources
from cnnlab.train.rundir import load_run
from tiny_nets import imported_run

NETS = """
import torch
from torch import nn


def make(classes=10):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.InstanceNorm2d(6, affine=True), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, classes),
    )
"""


def _read_maps(model, x) -> dict[str, torch.Tensor]:
    """{name: input} of the modules that read a block's map: the second conv, the pool."""
    seen, hooks = {}, []
    for name in ("3", "6"):

        def hook(m, args, name=name):
            seen[name] = args[0].detach().clone()

        hooks.append(model.get_submodule(name).register_forward_pre_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def test_a_groupnorm_blocks_map_is_its_activations(tmp_path):
    path = imported_run(tmp_path, NETS, data="digits")
    run = load_run(path)
    src = Sources(path, run, None, Budget())
    _, x, _ = src.test
    run.model.eval()
    read = _read_maps(run.model, x[:1])
    assert src.map_layers == ["2", "5"]
    for layer, reader in zip(src.map_layers, ("3", "6"), strict=True):
        with torch.no_grad():
            out = run.model[: int(layer) + 1](x[:1])
        assert torch.equal(out, read[reader]), layer
    assert src.stages == ["2", "5"]
