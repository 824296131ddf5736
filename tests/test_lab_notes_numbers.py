"""The lab's sentences give the notes' own numbers the way the notes count them: the dense
layer's 150,529,000 are parameters, 150,528,000 weights and 1,000 biases (torch's own
nn.Linear counts each); the floor's dropped pixels are the last columns and rows, at the right
and bottom (§2.2), after ⌊(I − K + 2P)/S⌋ + 1 windows, not a band "per side". Made-up
measurements, built as tests/test_lab_rules.py's."""

from __future__ import annotations

from torch import nn

from cnnlab.lab import ex_floor, ex_parameters
from test_lab_rules import floor, parameters


def test_the_dense_count_is_split_into_weights_and_biases_as_torch_counts_them():
    dense = nn.Linear(224 * 224 * 3, 1000, device="meta")
    v = ex_parameters.judge(parameters((88.0, 84.0, 88.5)))
    weights, biases = dense.weight.numel(), dense.bias.numel()
    said = f"150,529,000 parameters by formula ({weights:,} weights + {biases:,} biases)"
    assert said in v.meaning, v.meaning


def test_the_floor_sentence_names_the_right_and_bottom_edges_and_the_window_count():
    size, k, s = ex_floor.SIZE, ex_floor.KERNEL, ex_floor.STRIDE
    windows = (size - k) // s + 1  # the notes' formula, P = 0
    read = (windows - 1) * s + k  # pixels 0..read-1 lie under a window
    dropped = size - read
    assert dropped == 2 and size**2 - read**2 == 108  # the band of floor(): 2 columns + 2 rows
    v = ex_floor.judge(floor((108, 0, 0)))
    assert f"⌊({size} − {k})/{s}⌋ + 1 = {windows} windows per row read pixels 0-{read - 1}" in (
        v.meaning
    ), v.meaning
    assert f"the last {dropped} columns and rows dropped (the right and bottom edges)" in v.meaning
    assert "per side" not in v.meaning and not any("per side" in k for k in v.numbers)
