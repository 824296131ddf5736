"""A factory that raises on a --model-arg of another type than its parameter's default
(`width=16` written, `--model-arg width=16.5` or `width=True` given) is told which argument
that is: torch's 'empty(): argument 'size' ... must be tuple of ints, but found element of
type float' named none. Truth: the factory's own signature (inspect) and the values given."""

from __future__ import annotations

import inspect

import pytest

from cnnlab.errors import SpecError
from cnnlab.train.source import parse_model_ref

NETS = """
from torch import nn


def make(classes=10, width=16, p=0.5, act="relu", kernel=(3, 3)):
    layers = [nn.Conv2d(3, width, kernel[0]), nn.ReLU() if act == "relu" else nn.GELU(),
              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(p), nn.Linear(width, classes)]
    return nn.Sequential(*layers)
"""


def _error(tmp_path, *args: str) -> str:
    (tmp_path / "nets.py").write_text(NETS)
    source = parse_model_ref(f"{tmp_path / 'nets.py'}:make", list(args))
    with pytest.raises(SpecError) as caught:
        source.build()
    return str(caught.value)


def _default(tmp_path, name):
    namespace: dict = {}
    exec(NETS, namespace)
    return inspect.signature(namespace["make"]).parameters[name].default


@pytest.mark.parametrize("value, kind", [("16.5", "a float"), ("True", "a bool")])
def test_the_argument_unlike_its_default_is_named(tmp_path, value, kind):
    message = _error(tmp_path, f"width={value}", "p=1", "classes=3")
    default = _default(tmp_path, "width")
    assert type(default) is int
    assert f"width={value} is {kind} where make's default {default} is an int: give an int" in (
        message
    )
    # p=1 is an int where the default 0.5 is a float (1 is 1.0), classes=3 an int like 10
    assert "p=1 is" not in message and "classes=3 is" not in message


def test_an_error_of_arguments_of_the_defaults_types_names_none(tmp_path):
    message = _error(tmp_path, "p=1.5")  # nn.Dropout refuses 1.5: a float, as 0.5
    assert "dropout probability" in message and " is a " not in message


def test_a_number_for_a_tuple_default_is_named(tmp_path):
    message = _error(tmp_path, "kernel=3", "classes=3")
    assert type(_default(tmp_path, "kernel")) is tuple
    assert "kernel=3 is an int where make's default (3, 3) is a tuple: give a tuple" in message
    assert "classes=3 is" not in message
    assert " is a " not in _error(tmp_path, "kernel=[3, 3]", "width=-1")  # a list fits too
