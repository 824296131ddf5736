"""The effective receptive field's side never exceeds the field the gradient fills: a square
placed at one rounded position around a centre of mass between pixels cut the field's far
column off, so an even 14-px field measured 15 (a ConvNeXt stage's depthwise conv in the
report: theoretical 14 px, effective 15)."""

from __future__ import annotations

import torch

from cnnlab.explain.erf import centred_side, support_side


def test_an_even_field_weighted_to_one_side_measures_within_its_support():
    grad = torch.zeros(32, 32)
    grad[9:23, 9:23] = 1.0
    grad[9:23, 9] = 3.0  # its first row and column heavier: the centre of mass off the middle
    grad[9, 9:23] = 3.0
    assert support_side(grad) == 14
    assert centred_side(grad, 1.0) == 14  # all of it, in the 14-px square that holds it
    assert centred_side(grad) <= 14


def test_a_centred_odd_field_is_measured_as_before():
    grad = torch.zeros(15, 15)
    grad[4:11, 4:11] = 1.0
    grad[7, 7] = 100.0
    assert centred_side(grad, 1.0) == 7
    assert centred_side(grad, 0.5) == 1
