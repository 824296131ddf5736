"""cnnlab.geometry against independent truths: torch's shapes, parameter counts and gradients,
brute-force window enumeration, and the published VGG-16 receptive fields."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab import geometry
from cnnlab.errors import SpecError
from cnnlab.geometry import RF, LayerGeometry

FAST = settings(max_examples=60, deadline=None)

conv_args = st.fixed_dictionaries(
    {
        "size": st.integers(1, 40),
        "kernel": st.integers(1, 9),
        "padding": st.integers(0, 4),
        "stride": st.integers(1, 5),
        "dilation": st.integers(1, 4),
    }
)


def _fits(a: dict) -> bool:
    return a["dilation"] * (a["kernel"] - 1) + 1 <= a["size"] + 2 * a["padding"]


# --- conv_output_size ---------------------------------------------------------------------


@FAST
@given(conv_args)
def test_conv_output_size_equals_torch_conv2d_shape(a):
    x = torch.zeros(1, 1, a["size"], 1)
    w = torch.zeros(1, 1, a["kernel"], 1)
    conv = dict(stride=a["stride"], padding=(a["padding"], 0), dilation=a["dilation"])
    if not _fits(a):  # torch refuses; so must we, with a SpecError (a ValueError)
        with pytest.raises(RuntimeError):
            F.conv2d(x, w, **conv)
        with pytest.raises(SpecError, match="exceeds its padded input"):
            geometry.conv_output_size(**a)
        return
    assert geometry.conv_output_size(**a) == F.conv2d(x, w, **conv).shape[2]


@FAST
@given(conv_args, st.integers(0, 4))
def test_window_length_equals_torch_conv2d_shape_with_sides(a, after):
    """The unchecked formula: torch's shape for (before, after) padding, and its refusal."""
    x = F.pad(torch.zeros(1, 1, a["size"], 1), (0, 0, a["padding"], after))
    w = torch.zeros(1, 1, a["kernel"], 1)
    args = (a["size"], a["kernel"], a["padding"], after, a["stride"], a["dilation"])
    if a["dilation"] * (a["kernel"] - 1) + 1 > a["size"] + a["padding"] + after:
        with pytest.raises(SpecError, match="exceeds its padded input"):
            geometry.window_length(*args)
        return
    out = F.conv2d(x, w, stride=a["stride"], dilation=a["dilation"]).shape[2]
    assert geometry.window_length(*args) == out


@FAST
@given(conv_args)
def test_conv_output_size_equals_torch_max_pool2d_shape(a):
    a["padding"] = min(a["padding"], a["kernel"] // 2)  # torch's pooling limit
    if not _fits(a):
        return
    x = torch.zeros(1, 1, a["size"], 1)
    pool = F.max_pool2d(
        x, (a["kernel"], 1), (a["stride"], 1), (a["padding"], 0), (a["dilation"], 1)
    )
    assert geometry.conv_output_size(**a) == pool.shape[2]


def test_conv_output_size_known_values():
    assert geometry.conv_output_size(28, 5, padding=2) == 28  # fmnist-tf's "same" 5×5
    assert geometry.conv_output_size(224, 7, padding=3, stride=2) == 112  # ResNet stem
    assert geometry.conv_output_size(227, 11, stride=4) == 55  # AlexNet conv1


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"size": 0, "kernel": 3}, "size"),
        ({"size": 5, "kernel": 0}, "kernel"),
        ({"size": 5, "kernel": 3, "stride": 0}, "stride"),
        ({"size": 5, "kernel": 3, "padding": -1}, "padding"),
        ({"size": 5, "kernel": 3, "dilation": 0}, "dilation"),
        ({"size": 5.0, "kernel": 3}, "size"),
        ({"size": 5, "kernel": True}, "kernel"),
    ],
)
def test_conv_output_size_rejects_bad_arguments_by_name(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} must be an integer"):
        geometry.conv_output_size(**kwargs)


# --- dropped_pixels -----------------------------------------------------------------------


def _trailing_unread_by_torch(size, kernel, padding, stride, dilation) -> int:
    """Real pixels after the last one whose gradient is nonzero through an all-ones conv."""
    x = torch.ones(1, 1, 1, size, requires_grad=True)
    w = torch.ones(1, 1, 1, kernel)
    F.conv2d(x, w, stride=stride, padding=(0, padding), dilation=dilation).sum().backward()
    read = torch.nonzero(x.grad[0, 0, 0]).flatten().tolist()
    return size - 1 - (read[-1] if read else -1)


def _trailing_unread_brute_force(size, kernel, padding, stride, dilation) -> int:
    """Enumerate every window's taps in padded coordinates; keep the real ones."""
    padded = size + 2 * padding
    read = {
        start + t * dilation - padding
        for start in range(0, padded - dilation * (kernel - 1), stride)
        for t in range(kernel)
    }
    real = [i for i in read if 0 <= i < size]
    return size - 1 - max(real, default=-1)


@FAST
@given(conv_args)
def test_dropped_pixels_equals_brute_force_and_torch_gradient(a):
    if not _fits(a):
        return
    got = geometry.dropped_pixels(**a)
    assert got == _trailing_unread_brute_force(**a)
    assert got == _trailing_unread_by_torch(**a)


def test_dropped_pixels_known_values():
    assert geometry.dropped_pixels(7, 3, stride=3) == 1  # windows 0..2, 3..5: pixel 6 dropped
    assert geometry.dropped_pixels(8, 3, stride=2) == 1  # windows end at 6: pixel 7 dropped
    assert geometry.dropped_pixels(8, 3, padding=1, stride=2) == 0  # last window reads 7
    assert geometry.dropped_pixels(224, 7, padding=3, stride=2) == 0
    assert geometry.dropped_pixels(32, 5, stride=3) == 0
    assert geometry.dropped_pixels(33, 5, stride=3) == 1


# --- (before, after) padding: the one formula for "same" padding too -----------------------

sided_args = st.fixed_dictionaries(
    {
        "size": st.integers(1, 40),
        "kernel": st.integers(1, 9),
        "padding": st.tuples(st.integers(0, 4), st.integers(0, 4)),
        "stride": st.integers(1, 5),
        "dilation": st.integers(1, 4),
    }
)


def _torch_sided(size, kernel, padding, stride, dilation):
    """torch: F.pad with (before, after) zeros, then an unpadded conv; None if torch refuses.
    Also the real pixels after the last one with a nonzero gradient (dropped pixels)."""
    x = torch.ones(1, 1, 1, size, requires_grad=True)
    padded = F.pad(x, padding)  # (1, 1, 1, before + size + after)
    try:
        y = F.conv2d(padded, torch.ones(1, 1, 1, kernel), stride=stride, dilation=dilation)
    except RuntimeError:
        return None
    y.sum().backward()
    read = torch.nonzero(x.grad[0, 0, 0]).flatten().tolist()
    return y.shape[3], size - 1 - (read[-1] if read else -1)


@FAST
@given(sided_args)
def test_sided_padding_equals_torch_pad_then_conv(a):
    truth = _torch_sided(**a)
    if truth is None:
        with pytest.raises(SpecError, match="exceeds its padded input"):
            geometry.conv_output_size(**a)
        return
    assert geometry.conv_output_size(**a) == truth[0]
    assert geometry.dropped_pixels(**a) == truth[1]


@FAST
@given(conv_args)
def test_equal_sides_are_the_int_padding(a):
    if not _fits(a):
        return
    sided = {**a, "padding": (a["padding"], a["padding"])}
    assert geometry.conv_output_size(**sided) == geometry.conv_output_size(**a)
    assert geometry.dropped_pixels(**sided) == geometry.dropped_pixels(**a)


def test_sided_padding_known_values_and_errors():
    assert geometry.conv_output_size(28, 4, padding=geometry.same_padding(4)) == 28
    assert geometry.conv_output_size(28, 4, padding=(1, 2), stride=2) == 14  # ceil(28 / 2)
    with pytest.raises(SpecError, match=r"padding 1 \+ 2"):
        geometry.conv_output_size(2, 7, padding=(1, 2))
    for bad in [(1,), (1, 2, 3), (-1, 0), (0, 1.5)]:
        with pytest.raises(SpecError, match="padding"):
            geometry.conv_output_size(5, 3, padding=bad)


def test_messages_quote_huge_values_briefly():
    """A 5,000-digit integer cannot even be repr()'d by Python: the message says its size."""
    for bad in (-(10**5000), [10**5000], [[list(range(100))] * 100] * 100):
        with pytest.raises(SpecError) as err:
            geometry.conv_output_size(5, bad)
        assert len(str(err.value)) < 200


# --- same_padding -------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@FAST
@given(
    kernel=st.integers(1, 7),
    dilation=st.integers(1, 3),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_same_padding_reproduces_torch_padding_same(kernel, dilation, h, w, seed):
    torch.manual_seed(seed)
    conv = nn.Conv2d(2, 3, kernel, padding="same", dilation=dilation, dtype=torch.float64)
    x = torch.randn(1, 2, h, w, dtype=torch.float64)
    before, after = geometry.same_padding(kernel, dilation)
    padded = F.pad(x, (before, after, before, after))  # (left, right, top, bottom)
    manual = F.conv2d(padded, conv.weight, conv.bias, dilation=dilation)
    torch.testing.assert_close(manual, conv(x))
    assert manual.shape[2:] == (h, w)


def test_same_padding_known_values():
    assert geometry.same_padding(3) == (1, 1)  # the notes' P = (K - 1) / 2
    assert geometry.same_padding(5) == (2, 2)
    assert geometry.same_padding(4) == (1, 2)  # even kernel: the extra pixel goes after
    assert geometry.same_padding(3, dilation=2) == (2, 2)


# --- parameter counts ---------------------------------------------------------------------


@FAST
@given(
    kh=st.integers(1, 7),
    kw=st.integers(1, 7),
    groups=st.integers(1, 4),
    in_per_group=st.integers(1, 5),
    out_per_group=st.integers(1, 5),
    bias=st.booleans(),
)
def test_conv_params_equals_nn_conv2d(kh, kw, groups, in_per_group, out_per_group, bias):
    c_in, c_out = groups * in_per_group, groups * out_per_group
    conv = nn.Conv2d(c_in, c_out, (kh, kw), groups=groups, bias=bias, device="meta")
    expected = sum(p.numel() for p in conv.parameters())
    assert geometry.conv_params((kh, kw), c_in, c_out, bias=bias, groups=groups) == expected
    if kh == kw:
        assert geometry.conv_params(kh, c_in, c_out, bias=bias, groups=groups) == expected


def test_conv_params_notes_formula_and_stacking_saving():
    # §1: ((w · h · C_in) + 1) · filters
    assert geometry.conv_params(5, 3, 32) == (5 * 5 * 3 + 1) * 32
    # §3.2: three 3×3 layers cost 27/49 of one 7×7 (a 45% saving), biases aside
    one = geometry.conv_params(7, 64, 64, bias=False)
    three = 3 * geometry.conv_params(3, 64, 64, bias=False)
    assert three / one == pytest.approx(27 / 49)


@pytest.mark.parametrize(
    "args, match",
    [
        ((3, 6, 4, True, 4), "in_channels 6 is not divisible by groups 4"),
        ((3, 8, 6, True, 4), "filters 6 is not divisible by groups 4"),
        (((3, 3, 3), 8, 8), "kernel must be an int or an"),
        ((0, 8, 8), "kernel must be"),
    ],
)
def test_conv_params_rejects_bad_arguments(args, match):
    with pytest.raises(SpecError, match=match):
        geometry.conv_params(*args)


@given(st.integers(1, 5000), st.integers(1, 500), st.booleans())
@settings(max_examples=30, deadline=None)
def test_linear_params_equals_nn_linear(n_in, n_out, bias):
    layer = nn.Linear(n_in, n_out, bias=bias, device="meta")
    expected = sum(p.numel() for p in layer.parameters())
    assert geometry.linear_params(n_in, n_out, bias) == expected


def test_linear_params_notes_mlp_example():
    assert geometry.linear_params(224 * 224 * 3, 1000) == 150_529_000  # §1: "150M+"


# --- receptive field ----------------------------------------------------------------------


def _vgg16_features() -> list[tuple[int, int, int]]:
    layers = []
    for n_convs in (2, 2, 3, 3, 3):
        layers += [(3, 1, 1)] * n_convs + [(2, 2, 0)]
    return layers


def test_receptive_field_vgg16_published_values():
    rfs = geometry.receptive_field(_vgg16_features())
    conv5_3, pool5 = rfs[-2], rfs[-1]
    assert (conv5_3.size, conv5_3.jump) == (196, 16)
    assert (pool5.size, pool5.jump) == (212, 32)


def test_receptive_field_three_3x3_equal_one_7x7_and_print_readably():
    stacked = geometry.receptive_field([3, 3, 3])
    assert [rf.size for rf in stacked] == [3, 5, 7]
    assert stacked[-1] == geometry.receptive_field([7])[0]
    assert repr(stacked[-1]) == "RF(size=7, jump=1, start=3.0)"


def test_receptive_field_per_axis_and_layer_forms():
    layers = [LayerGeometry(kernel=(1, 7), padding=(0, 3)), ((3, 1), 2), (2, 2, 0, 1)]
    h = geometry.receptive_field(layers, axis=0)
    w = geometry.receptive_field(layers, axis=1)
    assert h[-1] == RF(size=5, jump=4, start=2.0)
    assert w[-1] == RF(size=9, jump=4, start=1.0)


def test_receptive_field_errors_name_the_layer():
    with pytest.raises(SpecError, match="layer 1: stride must be"):
        geometry.receptive_field([3, (3, 0)])
    with pytest.raises(SpecError, match="layer 0: expected"):
        geometry.receptive_field([(3, 1, 0, 1, 9)])


layer_geometry = st.tuples(
    st.integers(1, 5), st.integers(1, 3), st.integers(0, 2), st.integers(1, 2)
).filter(lambda g: g[2] <= g[3] * (g[0] - 1))  # padding within the kernel's reach


def _field_by_gradient(stack, size: int, unit: int) -> tuple[int, int]:
    """First and last input pixel with nonzero gradient of output `unit` of an all-ones stack."""
    x = torch.ones(1, 1, 1, size, dtype=torch.float64, requires_grad=True)
    y = x
    for k, s, p, d in stack:
        y = F.conv2d(y, torch.ones(1, 1, 1, k, dtype=torch.float64), None, s, (0, p), d)
    assert y.shape[-1] > unit, "the test image is too small to hold the unit"
    y[0, 0, 0, unit].backward()
    seen = torch.nonzero(x.grad[0, 0, 0]).flatten()
    return seen.min().item(), seen.max().item()


@settings(max_examples=40, deadline=None)
@given(st.lists(layer_geometry, min_size=1, max_size=4))
def test_receptive_field_equals_gradient_extent_of_positive_conv_stack(stack):
    """With all-ones weights nothing cancels: the input pixels with nonzero gradient of one
    output unit span exactly its theoretical receptive field, centred on start + unit·jump."""
    rf = geometry.receptive_field(stack)[-1]
    # the first unit whose field lies wholly inside the image, in an image that holds two
    unit = max(0, -int((rf.start - (rf.size - 1) / 2) // rf.jump))
    centre = rf.start + unit * rf.jump
    size = int(centre + rf.size) + 2 * rf.jump + 2
    first, last = _field_by_gradient(stack, size, unit)
    assert last - first + 1 == rf.size
    assert (first + last) / 2 == centre
    assert _field_by_gradient(stack, size, unit + 1)[0] == first + rf.jump


def test_rf_step_matches_receptive_field():
    rf = geometry.rf_step(geometry.INPUT_RF, 5, stride=2, padding=2)
    assert rf == geometry.receptive_field([(5, 2, 2)])[0] == RF(size=5, jump=2, start=0.0)


def test_docstring_examples_hold():
    import doctest

    from cnnlab import geometry

    assert doctest.testmod(geometry).failed == 0
