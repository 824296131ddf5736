"""A layer whose arguments are indented like its kind (YAML reads `{conv: 32, kernel: 5}`)
is told the long form to write, and that form loads as the layer meant."""

from __future__ import annotations

import re

import pytest

from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError

MISNESTED = [
    ("  - conv: 32\n    kernel: 5\n", {"filters": 32, "kernel": 5}),
    ("  - conv:\n      filters: 8\n    padding: same\n", {"filters": 8, "padding": "same"}),
    ("  - maxpool: 2\n    stride: 1\n", {"kernel": 2, "stride": 1}),
]


@pytest.mark.parametrize(("layer", "meant"), MISNESTED)
def test_arguments_beside_the_kind_are_told_the_long_form(layer, meant):
    text = "input: [1, 28, 28]\nlayers:\n" + layer
    with pytest.raises(SpecError, match="its arguments go inside it") as caught:
        load_spec(text)
    written = re.search(r"inside it: `(.*)`$", str(caught.value)).group(1)
    fixed = load_spec("input: [1, 28, 28]\nlayers:\n  - " + written + "\n")
    ((kind, _),) = yaml_layer(layer).items()
    assert fixed.layers[0].kind == kind
    assert {k: fixed.layers[0].args[k] for k in meant} == meant


def yaml_layer(layer: str) -> dict:
    import yaml

    return {next(iter(yaml.safe_load(layer)[0])): None}


def test_a_value_yaml_cannot_write_still_gets_the_one_line_refusal():
    numpy = pytest.importorskip("numpy")
    with pytest.raises(SpecError, match="expected a name like `relu`"):
        load_spec({"input": [1, 8, 8], "layers": [{"conv": 32, "kernel": numpy.int64(5)}]})


def test_two_kinds_side_by_side_get_no_made_up_form():
    with pytest.raises(SpecError) as caught:
        load_spec({"input": [1, 8, 8], "layers": [{"conv": 3, "relu": None}]})
    assert "inside it" not in str(caught.value)
