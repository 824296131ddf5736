"""even-kernel-same says how the asymmetric padding was made: padding='same' of an even
kernel, or an F.pad (nn.ZeroPad2d, YOLOv3-tiny's (0, 1, 0, 1) before MaxPool2d(2, 1)) of the
same zeros. Truth: torch's own output sizes (the map keeps its size, as 'same' does) and the
model's code (no padding='same' in the F.pad case)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.design.summary import summary

pytestmark = pytest.mark.usefixtures("one_thread")


def lint(model: nn.Module, size=(3, 13, 13)) -> str:
    assert model(torch.randn(1, *size)).shape[-2:] == size[1:]  # 'same': the size is kept
    return {w.code: w for w in summary(model, size).warnings}["even-kernel-same"].message


def test_an_f_pad_is_named_as_such() -> None:
    pool = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ZeroPad2d((0, 1, 0, 1)), nn.MaxPool2d(2, 1))
    text = lint(pool)
    assert "kernel 2×2 after an F.pad of 0 before and 1 after" in text
    assert "padding='same'" not in text


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_padding_same_is_named_as_such() -> None:
    text = lint(nn.Sequential(nn.Conv2d(3, 8, 4, padding="same")))
    assert "kernel 4×4 with padding='same' pads 1 before and 2 after" in text
