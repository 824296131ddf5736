"""A model from code with another class count than the data's is told the fix that works for
its factory: the argument that set the count (given or by default), or, for a factory that
takes no arguments, its last layer. Every factory was told '--model-arg NAME=10', which a
factory without parameters refuses ('got an unexpected keyword argument')."""

from __future__ import annotations

import pytest

from cnnlab.cli import main

NET = "nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, {}))"
FACTORIES = f"""
from torch import nn

def bare():
    return {NET.format(1)}

def labelled(width=4, num_labels=3, **options):
    return {NET.format("num_labels")}

def sized(width=4, depth=2):
    return {NET.format(5)}
"""


@pytest.fixture
def code(tmp_path):
    (tmp_path / "nets.py").write_text(FACTORIES)
    return tmp_path


def _train(code, factory, *more):
    args = ["train", "--model", f"{code / 'nets.py'}:{factory}", *more, "--data", "digits",
            "--epochs", "1", "--quiet", "--out", str(code / "run")]  # fmt: skip
    return main(args)


def test_a_factory_without_parameters_is_told_to_change_its_last_layer(code, capsys):
    assert _train(code, "bare") == 2
    err = capsys.readouterr().err
    assert "bare() takes no arguments, so change its last layer to 10 outputs" in err
    assert "--model-arg" not in err and len(err.strip().splitlines()) == 1
    assert not (code / "run").exists()


def test_the_argument_given_with_the_count_is_named_with_the_data_s(code, capsys):
    assert _train(code, "labelled", "--model-arg", "num_labels=4") == 2
    assert "--model-arg num_labels=10 (num_labels=4 was given)" in capsys.readouterr().err


def test_the_parameter_whose_default_is_the_count_is_named_beside_kwargs(code, capsys):
    assert _train(code, "labelled") == 2
    assert "--model-arg num_labels=10 (num_labels=3 was its default)" in capsys.readouterr().err
    assert _train(code, "labelled", "--model-arg", "num_labels=10") == 0


def test_parameters_none_of_which_sets_the_count_are_listed(code, capsys):
    """Neither width=4 nor depth=2 is the 5 outputs: no --model-arg NAME=10 can help."""
    assert _train(code, "sized") == 2
    err = capsys.readouterr().err
    assert (
        "no argument of sized(width, depth) set its 5 (none defaults to 5), so change its "
        "last layer to 10 outputs" in err
    )
    assert "NAME" not in err
