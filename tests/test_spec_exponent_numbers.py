"""Exponent numbers in a YAML spec read as YAML 1.2, JSON and Python read them (`dropout:
1e-1` was the text '1e-1' to YAML 1.1, refused); a leading-zero integer that YAML reads as
text (`filters: 09`) is told to drop the zero, not its (absent) quotes."""

from __future__ import annotations

import json

import pytest

from cnnlab.design.build import build
from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError


def _text(layer: str) -> str:
    return (
        f"name: net\ninput: [1, 8, 8]\nlayers:\n  - conv: {{filters: 2, kernel: 3}}\n  - {layer}\n"
    )


@pytest.mark.parametrize("written", ["1e-1", "1.0e-1", "1E-1", "+1e-1", ".1e0", "1.e-1", "10e-2"])
def test_an_exponent_is_the_number_python_and_json_read(written):
    """Truth: float() and json.loads of the same text (where JSON takes it)."""
    dropout = build(load_spec(_text(f"dropout: {written}")))[1]
    assert dropout.p == float(written)
    if written[0] not in "+." and ".e" not in written:
        assert dropout.p == json.loads(written)


def test_an_exponent_too_large_for_the_argument_is_refused_by_its_check():
    with pytest.raises(SpecError, match=r"p must be in \[0, 1\), got 1000\.0"):
        load_spec(_text("dropout: 1.0e3"))


def test_a_quoted_exponent_is_told_to_drop_the_quotes():
    with pytest.raises(SpecError, match="got the text '1e-1', in quotes; write 1e-1 without"):
        load_spec(_text('dropout: "1e-1"'))


@pytest.mark.parametrize(("written", "meant"), [("09", 9), ("08", 8), ("-09", -9)])
def test_a_leading_zero_read_as_text_is_told_the_number(written, meant):
    with pytest.raises(SpecError, match=f"got the text '{written}': write {meant}, without the"):
        load_spec(_text(f"conv: {{filters: {written}, kernel: 3}}"))
