"""A typo'd or borrowed layer name gets the kind it was meant as: PyTorch's and Keras' names
(ReLU, Conv2d, Dense, GlobalAveragePooling2D) and other cases are compared as the spec's."""

from __future__ import annotations

import pytest

from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError

MEANT = [
    ("Relu", "relu"),  # was 'did you mean elu?': difflib compared case-sensitively
    ("ReLU", "relu"),  # was no suggestion at all
    ("GELU", "gelu"),
    ("ELU", "elu"),
    ("LeakyReLU", "leaky_relu"),
    ("leaky-relu", "leaky_relu"),
    ("Conv2d", "conv"),
    ("BatchNorm1d", "batchnorm"),
    ("convv", "conv"),
    ("Dense", "linear"),
    ("globalavgpool", "gap"),  # was 'did you mean avgpool?'
    ("AdaptiveAvgPool2d", "gap"),  # was 'did you mean adaptiveconcatpool?'
    ("GlobalAveragePooling2D", "gap"),
]


@pytest.mark.parametrize(("written", "kind"), MEANT)
def test_an_unknown_kind_is_told_the_kind_it_means(written, kind):
    with pytest.raises(SpecError, match=rf"unknown kind \(did you mean {kind}\?\)"):
        load_spec({"input": [1, 8, 8], "layers": [written]})


@pytest.mark.parametrize(
    ("written", "argument"), [("Filters", "filters"), ("kernel_size", "kernel")]
)
def test_an_unknown_argument_is_told_the_argument_it_means(written, argument):
    with pytest.raises(
        SpecError, match=rf"unknown argument '{written}' \(did you mean {argument}\?\)"
    ):
        load_spec({"input": [1, 8, 8], "layers": [{"conv": {"filters": 2, written: 3}}]})
