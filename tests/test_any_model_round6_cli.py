"""The commands on models as people write them, beyond earlier rounds: layer names that are
ModuleDict keys with characters a file name cannot hold as they are. Truth: the names torch
gives the modules, and the files on disk."""

from __future__ import annotations

import pytest
from PIL import Image

from cnnlab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

KEYED_FILE = """
from torch import nn


class Keyed(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleDict({"block1/conv": nn.Conv2d(1, 4, 3, padding=1),
                                     "block1/relu": nn.ReLU()})
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        for layer in self.layers.values():
            x = layer(x)
        return self.fc(x.mean((2, 3)))


def make():
    return Keyed()
"""


def test_visualize_writes_one_file_per_layer_whose_name_holds_a_slash(tmp_path, capsys):
    """`maps_layers.block1/conv.png` was written as conv.png in a new directory
    maps_layers.block1 (and relu.png beside it); explain's names were already safe."""
    from cnnlab.train.rundir import load_run
    from tiny_nets import imported_run

    run_dir = imported_run(tmp_path, KEYED_FILE, data="digits", input_shape=(1, 8, 8))
    names = [n for n, _ in load_run(run_dir).model.named_modules()]
    assert "layers.block1/conv" in names  # torch's own name for it
    Image.new("L", (8, 8), 128).save(tmp_path / "x.png")
    out = tmp_path / "maps"
    assert (
        main(["visualize", str(run_dir), "--maps", str(tmp_path / "x.png"), "--out", str(out)]) == 0
    )
    written = sorted(p.name for p in out.iterdir())
    assert written == ["maps_layers.block1_conv.png", "maps_layers.block1_relu.png"]
    assert all((out / name).is_file() for name in written)
    argv = ["visualize", str(run_dir), "--actmax", "layers.block1/relu", "--channels", "1",
            "--steps", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert (out / "actmax_layers.block1_relu.png").is_file()
