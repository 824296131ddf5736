"""`cnnlab import` says which normalization it scored the weights with when --mean or --std
was not given: the --data train split's statistics, which weights trained elsewhere (with
(x - 0.5) / 0.5, or ImageNet's) were not trained with; their accuracy was lower with no word
of why. Truth: the train split's pixel statistics computed here from the images."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from cnnlab.cli import main
from cnnlab.data import load_splits

NET = """
from torch import nn


def make():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))
"""


def _import(tmp_path, name, *options):
    (tmp_path / "nets.py").write_text(NET)
    ns: dict = {}
    exec(NET, ns)
    torch.manual_seed(0)
    save_file(ns["make"]().state_dict(), tmp_path / "w.safetensors")
    weights, ref = str(tmp_path / "w.safetensors"), f"{tmp_path / 'nets.py'}:make"
    args = ["import", "--model", ref, "--weights", weights, "--data", "digits",
            "--out", str(tmp_path / name)]  # fmt: skip
    assert main([*args, *options]) == 0


def test_the_data_statistics_it_normalized_with_are_said(tmp_path, capsys):
    _import(tmp_path, "run")
    out = capsys.readouterr().out
    train, _ = load_splits("digits")
    pixels = train.images.float() / 255
    mean, std = pixels.mean().item(), pixels.std().item()
    assert f"images normalized with --data's train-split mean {mean:.4g} and std {std:.4g};" in out
    assert "import again with --mean and --std" in out


def test_given_statistics_are_not_said_to_come_from_the_data(tmp_path, capsys):
    _import(tmp_path, "both", "--mean", "0.5", "--std", "0.5")
    assert "normalized with" not in capsys.readouterr().out
    _import(tmp_path, "one", "--mean", "0.5")
    out = capsys.readouterr().out
    assert "train-split std " in out and "train-split mean" not in out
