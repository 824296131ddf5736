"""`cnnlab visualize --actmax` on a run whose test split is small (digits: 359 images)."""

from __future__ import annotations

import re

from safetensors.torch import save_file

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.train.importing import import_run
from cnnlab.train.source import parse_model_ref

NETS = """
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(3, 10),
    )
"""


def test_actmax_names_the_number_of_test_images_it_compared_with(tmp_path, capsys):
    """Each channel's line said 'best of 1000 test images' whatever the split held."""
    (tmp_path / "nets.py").write_text(NETS)
    source = parse_model_ref(f"{tmp_path / 'nets.py'}:make")
    save_file(source.build().state_dict(), tmp_path / "w.safetensors")
    import_run(source, tmp_path / "w.safetensors", tmp_path / "run", data="digits")
    capsys.readouterr()
    args = ["visualize", str(tmp_path / "run"), "--actmax", "0", "--steps", "2", "--out"]
    assert main([*args, str(tmp_path / "figs")]) == 0
    counts = set(re.findall(r"best of (\d+) test images", capsys.readouterr().out))
    assert counts == {str(len(load_dataset("digits", "test").labels))}  # 359
