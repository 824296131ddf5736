"""`cnnlab import --input 16,16,3` (the (H, W, C) order) was told 'give C,H,W with C 1 or 3,
e.g. 1,28,28': it says the order and the --input it means, as summary and train do, and that
advice typed back imports. Truth: the import on the advised --input."""

from __future__ import annotations

import re

import torch
from safetensors.torch import save_file

from cnnlab.cli import main

NET = """
from torch import nn


def make():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))
"""


def test_an_input_written_h_w_c_is_told_the_order_and_the_fix_imports(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(NET)
    namespace: dict = {}
    exec(NET, namespace)
    torch.manual_seed(0)
    save_file(namespace["make"]().state_dict(), tmp_path / "w.safetensors")
    args = ["import", "--model", f"{tmp_path / 'nets.py'}:make", "--weights",
            str(tmp_path / "w.safetensors"), "--data", "digits"]  # fmt: skip
    assert main([*args, "--input", "16,16,3", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    fix = re.search(r"is --input (\d+,\d+,\d+)", err)
    assert fix is not None and fix[1] == "3,16,16"
    assert main([*args, "--input", fix[1], "--out", str(tmp_path / "b")]) == 0
