"""`padding: same` at a stride > 1, which nn.Conv2d refuses: the spec builds it, pads as
geometry.same_padding says and gives O = ⌈I / S⌉, and docs/spec.md says so (it said "as
PyTorch", where PyTorch raises)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cnnlab.design.build import build
from cnnlab.geometry import same_padding

DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"


@pytest.mark.parametrize("kernel", [2, 3, 4, 5])
@pytest.mark.parametrize(("stride", "dilation"), [(2, 1), (3, 1), (2, 2)])
def test_same_at_a_stride_is_torch_pad_then_conv(kernel, stride, dilation):
    with pytest.raises(ValueError):  # the truth it departs from: torch refuses it
        torch.nn.Conv2d(1, 2, kernel, stride=stride, padding="same")
    for size in (7, 8, 13):
        layer = {"filters": 2, "kernel": kernel, "stride": stride, "dilation": dilation}
        model = build(
            {"input": [1, size, size], "layers": [{"conv": {**layer, "padding": "same"}}]}
        )
        conv = model[0]
        x = torch.randn(1, 1, size, size)
        before, after = same_padding(kernel, dilation)
        want = F.conv2d(
            F.pad(x, (before, after, before, after)), conv.weight, conv.bias, stride, 0, dilation
        )
        assert model.spec.shapes[0] == (2, math.ceil(size / stride), math.ceil(size / stride))
        torch.testing.assert_close(model(x), want)


def test_the_doc_says_same_works_at_a_stride_and_what_it_gives():
    text = DOC.read_text()
    assert "also at a stride S > 1, which nn.Conv2d refuses: O = ⌈I / S⌉" in text
