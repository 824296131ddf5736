"""A number written in quotes (`filters: "32"`, `dropout: "0.2"`: YAML reads text) is told
it is text and how to write it; the message quoted '32' beside 'must be an integer', and a
reader saw an integer."""

from __future__ import annotations

import pytest

from cnnlab.cli import main
from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError

QUOTED = [
    ({"conv": {"filters": "32"}}, "filters must be an integer >= 1, got the text '32', in quotes; "
     "write 32 without them"),
    ({"conv": {"filters": 4, "kernel": ["3", 3]}}, "write 3 without them"),
    ({"dropout": "0.2"}, "p must be a number, got the text '0.2', in quotes; write 0.2 without"),
    ({"leaky_relu": " .1"}, "write .1 without them"),
]  # fmt: skip


@pytest.mark.parametrize(("layer", "said"), QUOTED)
def test_a_quoted_number_is_told_to_lose_its_quotes(layer, said):
    with pytest.raises(SpecError) as caught:
        load_spec({"input": [1, 8, 8], "layers": [layer]})
    assert said in str(caught.value)


def test_text_that_is_no_number_is_quoted_as_before():
    with pytest.raises(SpecError, match="filters must be an integer >= 1, got 'many'$"):
        load_spec({"input": [1, 8, 8], "layers": [{"conv": {"filters": "many"}}]})


def test_the_written_fix_loads(tmp_path, capsys):
    path = tmp_path / "net.yaml"
    path.write_text('input: [1, 8, 8]\nlayers:\n  - conv: {filters: "32"}\n')
    assert main(["summary", str(path)]) == 2
    assert "write 32 without them" in capsys.readouterr().err
    path.write_text("input: [1, 8, 8]\nlayers:\n  - conv: {filters: 32}\n")
    assert load_spec(path).shapes[0] == (32, 6, 6)
