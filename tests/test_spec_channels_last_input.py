"""An input written [H, W, C] as TensorFlow does ([28, 28, 1]) that makes a layer fail is
told how cnnlab reads it ([C, H, W]) and what to write; the message advised a smaller kernel
or more padding, which cannot fix a 1-pixel-wide image."""

from __future__ import annotations

import pytest

from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError

LAYERS = [{"conv": 8}, "relu", "gap", {"linear": 10}]


@pytest.mark.parametrize(
    ("written", "meant"), [([28, 28, 1], [1, 28, 28]), ([32, 32, 3], None), ([64, 48, 4], None)]
)
def test_a_channels_last_input_that_fails_is_told_the_order(written, meant):
    layers = [*LAYERS[:1], {"maxpool": 2}, {"conv": {"filters": 8, "kernel": 3}}, *LAYERS[1:]]
    with pytest.raises(SpecError) as caught:
        load_spec({"input": written, "layers": layers})
    c, h, w = written
    assert f"note: input is [C, H, W], so {written} is {c} channels of {h}×{w} images" in str(
        caught.value
    )
    assert f"is [{w}, {c}, {h}]" in str(caught.value)
    if meant:
        load_spec({"input": meant, "layers": layers})  # what it says to write loads


def test_an_input_in_the_right_order_gets_no_note():
    with pytest.raises(SpecError) as caught:
        load_spec({"input": [1, 5, 5], "layers": [{"conv": {"filters": 4, "kernel": 7}}]})
    assert "note: input is" not in str(caught.value)
