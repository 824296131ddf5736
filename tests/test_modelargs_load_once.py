"""Checking --model-arg values against the factory's signature runs the factory's file once,
however many arguments there are (a file that imports a large library paid it per argument)."""

from __future__ import annotations

from cnnlab.train.source import parse_model_ref

NET = """
from pathlib import Path
from torch import nn

Path(__file__).with_suffix(".runs").open("a").write("x")  # one x per run of this file


def make_net(width: int = 8, depth: int = 2, p: float = 0.1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, width, 3), nn.Flatten(), nn.LazyLinear(10))
"""


def test_the_factory_s_file_runs_once_for_three_arguments(tmp_path):
    """Truth: the file's own count of its runs."""
    (tmp_path / "net.py").write_text(NET)
    source = parse_model_ref(f"{tmp_path}/net.py:make_net", ["width=16", "depth=3", "p=0.2"])
    assert source.args == (("width", 16), ("depth", 3), ("p", 0.2))
    assert (tmp_path / "net.runs").read_text() == "x"


def test_no_argument_runs_no_code(tmp_path):
    (tmp_path / "net.py").write_text(NET)
    parse_model_ref(f"{tmp_path}/net.py:make_net")
    assert not (tmp_path / "net.runs").exists()
