"""A layer the parser cannot read at all ("layer 3: expected a name like `relu` ...", no kind
to name) is still placed at its line of the file, as a layer with a kind is."""

from __future__ import annotations

import pytest

from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError

HEAD = "input: [1, 28, 28]\nlayers:\n  - relu\n  - relu\n"


@pytest.mark.parametrize(
    "layer",
    ["  - [relu]\n", "  - {}\n", "  - conv: 32\n    kernel: 5\n", "  - 3\n"],
)
def test_a_layer_with_no_kind_is_placed_at_its_line(tmp_path, layer):
    path = tmp_path / "net.yaml"
    path.write_text(HEAD + layer + "  - gap\n")
    with pytest.raises(SpecError, match=r"net\.yaml, line 5: layer 2: expected a name"):
        load_spec(path)


def test_inside_a_residual_body_too(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(HEAD + "  - residual:\n      - relu\n      - [conv]\n")
    with pytest.raises(SpecError, match=r"net\.yaml, line 7: layer 2\.1: expected a name"):
        load_spec(path)
