"""cnnlab.reference against torch's conv2d, pooling and softmax, and the notes' worked example."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.design import reference
from cnnlab.errors import SpecError

conv_config = st.fixed_dictionaries(
    {
        "n": st.integers(1, 2),
        "c": st.integers(1, 3),
        "filters": st.integers(1, 4),
        "h": st.integers(1, 9),
        "w": st.integers(1, 9),
        "kh": st.integers(1, 4),
        "kw": st.integers(1, 4),
        "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
        "padding": st.tuples(st.integers(0, 2), st.integers(0, 2)),
        "bias": st.booleans(),
        "seed": st.integers(0, 2**16),
    }
).filter(lambda c: c["kh"] <= c["h"] + 2 * c["padding"][0])
conv_config = conv_config.filter(lambda c: c["kw"] <= c["w"] + 2 * c["padding"][1])


def _conv_inputs(c):
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal((c["n"], c["c"], c["h"], c["w"]))
    w = rng.standard_normal((c["filters"], c["c"], c["kh"], c["kw"]))
    b = rng.standard_normal(c["filters"]) if c["bias"] else None
    return x, w, b


def _torch(a):
    return None if a is None else torch.from_numpy(a)


@settings(max_examples=50, deadline=None)
@given(conv_config)
def test_conv2d_equals_torch_conv2d(c):
    x, w, b = _conv_inputs(c)
    got = reference.conv2d(x, w, b, stride=c["stride"], padding=c["padding"])
    expected = F.conv2d(_torch(x), _torch(w), _torch(b), stride=c["stride"], padding=c["padding"])
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-10, atol=1e-10)


def test_conv2d_one_filter_makes_one_map_over_all_channels():
    # §2.5: a 3×3 filter on a C-channel image is 3×3×C and produces a single 2-D map
    x = np.ones((1, 5, 4, 4))
    out = reference.conv2d(x, np.ones((1, 5, 3, 3)))
    assert out.shape == (1, 1, 2, 2)
    assert (out == 45).all()


def test_conv2d_refuses_a_filter_of_the_wrong_depth():
    with pytest.raises(SpecError, match="w has 2 input channels but x has 3"):
        reference.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((4, 2, 3, 3)))
    with pytest.raises(SpecError, match="exceeds its padded input"):
        reference.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)))


pool_config = st.fixed_dictionaries(
    {
        "h": st.integers(1, 9),
        "w": st.integers(1, 9),
        "kernel": st.tuples(st.integers(1, 3), st.integers(1, 3)),
        "stride": st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)),
        "seed": st.integers(0, 2**16),
    }
).filter(lambda c: c["kernel"][0] <= c["h"] and c["kernel"][1] <= c["w"])


@settings(max_examples=40, deadline=None)
@given(pool_config)
def test_pools_equal_torch_pools(c):
    x = np.random.default_rng(c["seed"]).standard_normal((2, 3, c["h"], c["w"]))
    for ours, theirs in (
        (reference.max_pool2d, F.max_pool2d),
        (reference.avg_pool2d, F.avg_pool2d),
    ):
        expected = theirs(_torch(x), c["kernel"], c["stride"]).numpy()
        np.testing.assert_allclose(ours(x, c["kernel"], c["stride"]), expected, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.sampled_from([(10,), (3, 7), (2, 3, 4)]),
    scale=st.sampled_from([1.0, 30.0, 1000.0]),
    axis=st.integers(-1, 0),
    seed=st.integers(0, 2**16),
)
def test_softmax_equals_torch_softmax(shape, scale, axis, seed):
    z = scale * np.random.default_rng(seed).standard_normal(shape)
    expected = torch.softmax(torch.from_numpy(z), dim=axis).numpy()
    np.testing.assert_allclose(reference.softmax(z, axis=axis), expected, rtol=1e-10, atol=1e-300)


def test_softmax_is_stable_for_large_logits():
    p = reference.softmax(np.array([1000.0, 1001.0, 1002.0]))  # naive exp(1000) is inf
    assert np.isfinite(p).all()
    assert p.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(p, reference.softmax(np.array([0.0, 1.0, 2.0])))


def test_trace_conv_notes_worked_example():
    # §2.1: patch [[1,2,0],[0,1,1],[5,0,1]] · filter [[1,0,-1]]×3 = 1 - 1 + 4 = 4
    patch = [[1, 2, 0], [0, 1, 1], [5, 0, 1]]
    trace = reference.trace_conv(patch, [[1, 0, -1]] * 3, out_index=(0, 0))
    assert trace.output == 4.0 and trace.sum == 4.0 and trace.bias == 0.0
    assert trace.products.tolist() == [[[1, 0, 0], [0, 0, -1], [5, 0, -1]]]
    assert trace.products.sum(axis=2).tolist() == [[1, -1, 4]]  # the notes' row sums
    assert trace.origin == (0, 0)
    assert reference.trace_conv(patch, [[1, 0, -1]] * 3, b=0.5, out_index=(0, 0)).output == 4.5


@settings(max_examples=30, deadline=None)
@given(conv_config, st.data())
def test_trace_conv_equals_the_conv2d_unit(c, data):
    x, w, b = _conv_inputs(c)
    out = reference.conv2d(x[:1], w, b, stride=c["stride"], padding=c["padding"])
    f = data.draw(st.integers(0, out.shape[1] - 1))
    i = data.draw(st.integers(0, out.shape[2] - 1))
    j = data.draw(st.integers(0, out.shape[3] - 1))
    trace = reference.trace_conv(x[0], w, b, (f, i, j), stride=c["stride"], padding=c["padding"])
    assert trace.output == pytest.approx(out[0, f, i, j], abs=1e-12)
    assert trace.output == pytest.approx(trace.products.sum() + trace.bias)
    assert trace.patch.shape == trace.filter.shape == (c["c"], c["kh"], c["kw"])
    assert trace.origin == (
        i * c["stride"][0] - c["padding"][0],
        j * c["stride"][1] - c["padding"][1],
    )


def test_trace_conv_is_read_only_and_checks_the_index():
    trace = reference.trace_conv(np.ones((2, 4, 4)), np.ones((3, 2, 3, 3)), out_index=(2, 1, 1))
    with pytest.raises(ValueError):
        trace.patch[0, 0, 0] = 5.0
    with pytest.raises(SpecError, match="outside the output"):
        reference.trace_conv(np.ones((2, 4, 4)), np.ones((3, 2, 3, 3)), out_index=(0, 2, 0))


def test_docstring_examples_hold():
    import doctest

    from cnnlab.design import reference

    assert doctest.testmod(reference).failed == 0


def test_trace_conv_takes_a_batch_of_one_like_conv2d_and_refuses_a_batch():
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(1, 2, 5, 5)), rng.normal(size=(3, 2, 3, 3))
    unit = reference.conv2d(x, w, stride=2, padding=1)[0, 2, 1, 0]
    traced = reference.trace_conv(x, w, out_index=(2, 1, 0), stride=2, padding=1)
    assert traced.output == pytest.approx(unit)
    with pytest.raises(SpecError, match=r"x\[n\]"):
        reference.trace_conv(np.zeros((2, 2, 5, 5)), w)
