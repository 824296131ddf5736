"""A flag written as YAML 1.1's other booleans (`bias: no`, `bias: on`) is refused with the word
to write; YAML 1.1 read `no` as false and built a conv without its bias, while docs/spec.md and
the argument's rule say true or false. The words stay text elsewhere (a name `off`)."""

from __future__ import annotations

import pytest

from cnnlab.cli import main
from cnnlab.design.build import build
from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError


def _text(bias: str, name: str = "net") -> str:
    return f"name: {name}\ninput: [1, 8, 8]\nlayers:\n  - conv: {{filters: 2, bias: {bias}}}\n"


@pytest.mark.parametrize(
    ("word", "write"), [("yes", "true"), ("no", "false"), ("On", "true"), ("OFF", "false")]
)
def test_yaml11_boolean_words_are_refused_with_the_word_to_write(word, write):
    with pytest.raises(SpecError) as caught:
        load_spec(_text(word))
    assert str(caught.value) == (
        f"layer 0 (conv): bias must be true or false, got {word!r}: write {write}"
    )


@pytest.mark.parametrize(("word", "has_bias"), [("true", True), ("false", False), ("True", True)])
def test_true_and_false_still_set_the_bias(word, has_bias):
    conv = build(load_spec(_text(word)))[0]
    assert (conv.bias is not None) == has_bias  # torch's own module says it


def test_the_words_are_text_in_a_name_and_survive_a_round_trip():
    spec = load_spec(_text("true", name="off"))
    assert spec.name == "off"  # YAML 1.1 made it the bool False: "name must be a string"
    assert load_spec(spec.to_yaml()) == spec


def test_the_cli_says_it_in_one_line(tmp_path, capsys):
    path = tmp_path / "net.yaml"
    path.write_text(_text("no"))
    assert main(["summary", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cnnlab summary: error: {path}, line 4: layer 0 (conv): bias must be true "
                   "or false, got 'no': write false"]  # fmt: skip
