"""Spec text that is JSON (a string starting with `{`) is read as JSON: YAML 1.1, which read
it before, takes JSON's `1e-3` for the text "1e-3", so valid JSON was refused."""

from __future__ import annotations

import json

import pytest

from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError


def test_json_text_with_an_exponent_loads_as_json_does():
    text = '{"input": [1, 8, 8], "layers": [{"leaky_relu": 1e-2}, {"dropout": 2.5E-1}]}'
    spec = load_spec(text)
    assert spec == load_spec(json.loads(text))
    assert [dict(layer.args) for layer in spec.layers] == [{"slope": 0.01}, {"p": 0.25}]


def test_yaml_flow_text_still_loads():
    assert load_spec("{input: [1, 8, 8], layers: [relu]}").input == (1, 8, 8)


def test_a_repeated_key_in_json_text_is_still_refused():
    with pytest.raises(SpecError, match="'input' appears twice"):
        load_spec('{"input": [1, 8, 8], "input": [1, 9, 9], "layers": ["relu"]}')
