"""`cnnlab import --weights` of a file safetensors cannot read (a copy cut short, an empty
file): the refusal named the file and safetensors' own error ('header too small'), and no
fix. It now says to save the weights again, and how. Truth: safetensors itself cannot load
the file; nothing is written to --out."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file, save_file

from cnnlab.cli import main

NETS = """
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))
"""


@pytest.mark.parametrize("keep", [0, 0.5])
def test_an_unreadable_weights_file_is_refused_with_the_fix(tmp_path, capsys, keep):
    (tmp_path / "nets.py").write_text(NETS)
    namespace: dict = {}
    exec(NETS, namespace)
    save_file(namespace["make"]().state_dict(), tmp_path / "whole.safetensors")
    whole = (tmp_path / "whole.safetensors").read_bytes()
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(whole[: int(len(whole) * keep)])  # empty, or cut in half
    with pytest.raises(Exception):  # noqa: B017 - safetensors' own error types
        load_file(bad)
    capsys.readouterr()
    code = main(["import", "--model", f"{tmp_path / 'nets.py'}:make", "--weights", str(bad),
                 "--data", "digits", "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(bad) in err and "safetensors.torch.save_file(model.state_dict()" in err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
