"""A softmax written at the end of a spec (the notes' §5.5 ends the network with it) is told
that cnnlab applies softmax to the logits itself, and what to write instead."""

from __future__ import annotations

import pytest

from cnnlab.cli import main
from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError


@pytest.mark.parametrize("written", ["softmax", "Softmax", {"softmax": {"dim": 1}}, "log_softmax"])
def test_a_softmax_layer_is_told_cnnlab_applies_it(written):
    spec = {"input": [1, 8, 8], "layers": ["flatten", {"linear": 10}, written]}
    with pytest.raises(SpecError, match="layer 2 .*: a spec has no softmax layer: cnnlab applies"):
        load_spec(spec)


def test_the_cli_says_it_in_one_line(tmp_path, capsys):
    path = tmp_path / "net.yaml"
    path.write_text("input: [1, 8, 8]\nlayers: [flatten, {linear: 10}, softmax]\n")
    assert main(["summary", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "end the spec with its last linear layer" in err
