"""docs/spec.md shows how YAML anchors repeat a block (a spec has no key to hold a
definition: a top-level `blocks:` is refused), and the example loads as it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnnlab.design.build import build
from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError

DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"


def test_the_doc_shows_an_anchor_repeating_a_block_with_its_own_weights():
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    (text,) = [b for b in blocks if "&stage" in b]
    spec = load_spec(text)
    assert spec.layers[0] == spec.layers[1] and spec.layers[0].kind == "residual"
    model = build(spec)
    assert model[0] is not model[1] and model[0][0].weight is not model[1][0].weight


def test_a_definitions_key_is_refused_as_the_doc_says():
    assert "a top-level `blocks:` is an unknown key" in DOC.read_text()
    with pytest.raises(SpecError, match="unknown spec key 'blocks'"):
        load_spec("input: [1, 8, 8]\nblocks: &b {conv: 4}\nlayers: [*b]\n")
