"""cnnlab.layers against torch's own pooling and activation modules and hand-computed values."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.design.layers import (
    ACTIVATIONS,
    AdaptiveConcatPool2d,
    ConcatPool2d,
    Flatten,
    GAPHead,
    GlobalAvgPool2d,
    activation,
)
from cnnlab.errors import SpecError


def test_concat_pool_notes_example_shape():
    # §3.3: (B, 64, 28, 28) -> (B, 128, 14, 14)
    assert ConcatPool2d()(torch.zeros(2, 64, 28, 28)).shape == (2, 128, 14, 14)


def test_concat_pool_hand_computed_max_then_average():
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0]]).reshape(1, 1, 2, 2)
    assert ConcatPool2d(2)(x).flatten().tolist() == [6.0, 3.0]


@settings(max_examples=40, deadline=None)
@given(
    kernel=st.integers(1, 4),
    stride=st.none() | st.integers(1, 3),
    channels=st.integers(1, 4),
    h=st.integers(4, 10),
    w=st.integers(4, 10),
    seed=st.integers(0, 2**16),
)
def test_concat_pool_equals_torch_max_and_avg_pool_modules(kernel, stride, channels, h, w, seed):
    x = torch.randn(2, channels, h, w, generator=torch.Generator().manual_seed(seed))
    expected = torch.cat(
        [nn.MaxPool2d(kernel, stride)(x), nn.AvgPool2d(kernel, stride)(x)], dim=1
    )  # torch's own default: stride None means stride = kernel
    torch.testing.assert_close(ConcatPool2d(kernel, stride)(x), expected)


@settings(max_examples=25, deadline=None)
@given(out=st.integers(1, 3), h=st.integers(3, 9), w=st.integers(3, 9), seed=st.integers(0, 99))
def test_adaptive_concat_pool_equals_torch_adaptive_pools(out, h, w, seed):
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(seed))
    expected = torch.cat([nn.AdaptiveMaxPool2d(out)(x), nn.AdaptiveAvgPool2d(out)(x)], dim=1)
    torch.testing.assert_close(AdaptiveConcatPool2d(out)(x), expected)


def test_adaptive_concat_pool_default_is_global_max_and_mean():
    x = torch.randn(3, 5, 7, 6)
    y = AdaptiveConcatPool2d()(x)  # (B, 2C, 1, 1)
    assert y.shape == (3, 10, 1, 1)
    torch.testing.assert_close(y[:, :5, 0, 0], x.amax(dim=(2, 3)))
    torch.testing.assert_close(y[:, 5:, 0, 0], x.mean(dim=(2, 3)))


@pytest.mark.parametrize("size", [(1, 1), (7, 7), (5, 9)])
def test_gap_head_is_the_mean_of_each_map_for_any_input_size(size):
    x = torch.randn(2, 4, *size)
    torch.testing.assert_close(GAPHead()(x), F.adaptive_avg_pool2d(x, 1).flatten(1))
    assert GAPHead is GlobalAvgPool2d
    assert sum(p.numel() for p in GAPHead().parameters()) == 0


def test_flatten_head():
    assert Flatten()(torch.zeros(2, 3, 4, 5)).shape == (2, 60)


def test_modules_print_their_settings():
    assert repr(ConcatPool2d(3)) == "ConcatPool2d(kernel_size=3, stride=3)"
    assert repr(ConcatPool2d(3, 1)) == "ConcatPool2d(kernel_size=3, stride=1)"
    assert repr(AdaptiveConcatPool2d((2, 2))) == "AdaptiveConcatPool2d(output_size=(2, 2))"
    assert repr(GlobalAvgPool2d()) == "GlobalAvgPool2d()"


def test_pooling_modules_are_leaves_for_summaries():
    for m in (ConcatPool2d(2), AdaptiveConcatPool2d(), GlobalAvgPool2d()):
        assert list(m.children()) == []


# --- activation registry ------------------------------------------------------------------

CASES = [  # (name, arg, torch reference)
    ("relu", None, F.relu),
    ("leaky_relu", None, lambda x: F.leaky_relu(x, 0.01)),
    ("leaky_relu", 0.2, lambda x: F.leaky_relu(x, 0.2)),
    ("elu", None, F.elu),
    ("elu", 0.5, lambda x: F.elu(x, 0.5)),
    ("gelu", None, F.gelu),
    ("gelu", "tanh", lambda x: F.gelu(x, approximate="tanh")),
    ("sigmoid", None, torch.sigmoid),
    ("tanh", None, torch.tanh),
]


@pytest.mark.parametrize("name, arg, reference", CASES)
def test_activation_equals_torch_function(name, arg, reference):
    x = torch.linspace(-4, 4, 81)
    module = activation(name, arg)
    assert isinstance(module, nn.Module)
    torch.testing.assert_close(module(x), reference(x))
    torch.testing.assert_close(ACTIVATIONS[name](arg)(x), reference(x))


def test_activation_registry_names():
    assert set(ACTIVATIONS) == {"relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh"}
    assert activation("relu") is not activation("relu")  # a fresh module each call


def test_unknown_activation_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown activation 'swish'; valid: relu, leaky_relu"):
        activation("swish")


@pytest.mark.parametrize(
    "name, arg, match",
    [
        ("relu", 0.1, "relu takes no argument"),
        ("tanh", 1, "tanh takes no argument"),
        ("leaky_relu", "a", "leaky_relu takes a number"),
        ("elu", True, "elu takes a number"),
        ("gelu", "exact", "gelu takes"),
    ],
)
def test_activation_refuses_a_wrong_argument(name, arg, match):
    with pytest.raises(SpecError, match=match):
        activation(name, arg)


def test_docstring_examples_hold():
    import doctest

    from cnnlab.design import layers

    assert doctest.testmod(layers).failed == 0
