"""The report's feature maps of a model that applies some activations in its forward
(`F.relu(x)`, no nn.ReLU module): each conv block is a row, its map the block's last layer's
output (its activation module's, else its BatchNorm's or conv's: an F.relu is no layer's
output), as the explorer lists its blocks and `cnnlab visualize --maps` draws layers, and the
caption says which rows are not activated. Truth: the model's own layers' outputs (forward
hooks) and the explorer's block ends on the same run."""

from __future__ import annotations

import html

import numpy as np
import torch

from cnnlab.cli import main
from cnnlab.explorer import create_app
from cnnlab.report.facts import _maps
from cnnlab.report.sources import Budget, Sources
from cnnlab.train.rundir import load_run
from tiny_nets import SHARED_RELU as SHARED
from tiny_nets import imported_run

NETS = """
import torch
import torch.nn.functional as F
from torch import nn


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(6)
        self.conv3 = nn.Conv2d(6, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        return self.head(x.mean((2, 3)))


def make():
    torch.manual_seed(0)
    return Mixed()
"""


def test_a_functional_activations_block_is_a_row_of_the_feature_maps(tmp_path):
    """Only stem.1 (the one nn.ReLU) was shown: conv2/bn2 and conv3, activated by F.relu,
    were left out."""
    path = imported_run(tmp_path, NETS, data="digits")
    run = load_run(path)
    src = Sources(path, run, None, Budget())
    assert src.map_layers == ["stem.1", "bn2", "conv3"]
    explorer = create_app(path).state.explorer
    assert explorer.top_layers() == src.map_layers  # the explorer's block ends
    maps = _maps(src)
    _, x, _ = src.test
    seen = {}
    for name in src.map_layers:
        module = run.model.get_submodule(name)
        module.register_forward_hook(lambda m, a, y, n=name: seen.update({n: y[0].detach()}))
    with torch.no_grad():
        run.model(x[:1])
    for (label, array), name in zip(maps.layers, src.map_layers, strict=True):
        assert label.startswith(name)
        assert np.allclose(array, seen[name].float().numpy(), atol=1e-6)
    assert maps.before_activation == ("bn2 BatchNorm2d", "conv3 Conv2d")


def test_a_stage_of_functional_activations_ends_at_its_last_block(tmp_path):
    """The 8×8 stage's layer (activation maximisation's, 'the last layer of each stage') was
    stem.1, its first block: the later blocks at 8×8 have no activation module."""
    path = imported_run(tmp_path, NETS, data="digits")
    src = Sources(path, load_run(path), None, Budget())
    assert src.stages == ["conv3", "pool"]  # 8×8 ends at conv3; 4×4 holds only the pool


def test_the_caption_says_which_rows_are_not_activated(tmp_path):
    path = imported_run(tmp_path, NETS, data="digits")
    assert main(["report", str(path)]) == 0
    page = html.unescape((path / "report.html").read_text())
    assert "bn2 BatchNorm2d, conv3 Conv2d: the layer's own output, before any activation" in page


def _by_call(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every module call's output, by a forward hook counting each module's calls: `relu`
    its first, `relu #2` its second (the label the summary gives it)."""
    seen: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name):
        def record(m, a, y):
            counts[name] = counts.get(name, 0) + 1
            seen[name if counts[name] == 1 else f"{name} #{counts[name]}"] = y[0].detach().clone()

        return record

    hooks = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return seen


def test_a_relu_shared_by_three_blocks_is_three_rows_as_the_explorer_lists_them(tmp_path):
    """One nn.ReLU module after three convs: its calls end the blocks (the explorer's
    `relu`, `relu #2`, `relu #3`); the report listed ['c1', 'c2', 'relu'], its 'relu' row
    the first call's 8×8 map where the 2×2 one ends the last block."""
    path = imported_run(tmp_path, SHARED, data="digits")
    run = load_run(path)
    src = Sources(path, run, None, Budget())
    explorer = create_app(path).state.explorer
    assert src.map_layers == explorer.top_layers() == ["relu", "relu #2", "relu #3"]
    _, x, _ = src.test
    seen = _by_call(run.model, x[:1])
    maps = _maps(src)
    for (label, array), name in zip(maps.layers, src.map_layers, strict=True):
        assert label == f"{name} ReLU"
        assert np.allclose(array, seen[name].float().numpy(), atol=1e-6)
