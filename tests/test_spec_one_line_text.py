"""Spec text written on one line in YAML's block style (`summary "input: [1, 28, 28]"`) is told
it holds one key and how to write a whole spec; it was told it is a model from code ('give
it as --model input: [1,28,28]'), a fix that cannot work."""

from __future__ import annotations

import pytest
import yaml

from cnnlab.cli import main
from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError


@pytest.mark.parametrize("text", ["input: [1, 28, 28]", "layers: [relu, gap]", " name: x"])
def test_one_line_spec_text_is_told_how_to_write_a_spec(text):
    assert len(yaml.safe_load(text)) == 1  # YAML's own reading: one key, never a whole spec
    with pytest.raises(SpecError) as caught:
        load_spec(text)
    said = str(caught.value)
    assert "spec text on one line" in said and "--model" not in said
    assert "{input: [1, 28, 28], layers: [...]}" in said
    load_spec("{input: [1, 28, 28], layers: [gap, {linear: 2}]}")  # the braces it advises


def test_a_model_reference_is_still_told_to_use_model():
    with pytest.raises(SpecError, match="give it as --model nets.py:make_net"):
        load_spec("nets.py:make_net")


def test_the_cli_says_it_in_one_line(capsys):
    assert main(["summary", "input: [1,28,28]"]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
