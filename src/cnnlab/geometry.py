"""The arithmetic of a convolution, as pure functions (the notes §1, §2.2–2.5, §3.2).

No torch here: these formulas are what a summary, a spec validator or a learner with pencil
and paper uses. One spatial axis at a time; a layer with (h, w) pairs is two calls, one per
axis (``receptive_field(..., axis=1)`` for the width).

Conventions, the same as PyTorch's ``nn.Conv2d`` / ``nn.MaxPool2d`` (ceil_mode=False):

* ``padding`` is the zeros added on *each* side (so the padded input is ``I + 2P``); the
  output-size functions also take a (before, after) pair, as "same" padding needs;
* ``dilation`` D spreads the K taps of a kernel over ``D(K - 1) + 1`` pixels;
* a pixel's coordinate is its index (pixel ``i`` spans [i - 0.5, i + 0.5], centre ``i``).

Bad arguments raise :class:`cnnlab.errors.SpecError` (a ``ValueError``) naming the argument.
"""

from __future__ import annotations

import operator
import reprlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cnnlab.errors import SpecError

Pair = int | tuple[int, int]


class _Short(reprlib.Repr):
    """How a message quotes a bad value: a few items, 40 characters each, and a huge int by
    its size (repr() of an int over 4,300 digits raises). design/quote.py does the same for
    the layers above, which geometry may not import."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple = 1, 4, 4
        self.maxstring = self.maxother = self.maxlong = 40

    def repr_int(self, x: int, level: int) -> str:
        return f"<{x.bit_length()}-bit integer>" if x.bit_length() > 128 else repr(x)


_show = _Short()

__all__ = [
    "INPUT_RF",
    "RF",
    "LayerGeometry",
    "conv_output_size",
    "conv_params",
    "dropped_pixels",
    "linear_params",
    "receptive_field",
    "rf_step",
    "same_padding",
    "window_length",
]


def _int(name: str, value: object, minimum: int) -> int:
    """`value` as an int >= `minimum`, else a SpecError that names the argument."""
    if isinstance(value, bool):
        raise SpecError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        value = operator.index(value)  # ints and NumPy ints; 2.0 and "3" are refused
    except TypeError:
        raise SpecError(
            f"{name} must be an integer >= {minimum}, got {_show.repr(value)}"
        ) from None
    if value < minimum:
        raise SpecError(f"{name} must be an integer >= {minimum}, got {_show.repr(value)}")
    return value


def _pair(name: str, value: object, minimum: int) -> tuple[int, int]:
    """An int (used for both axes) or an (h, w) pair, each checked by `_int`."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise SpecError(f"{name} must be an int or an (h, w) pair, got {_show.repr(value)}")
        return _int(f"{name}[0]", value[0], minimum), _int(f"{name}[1]", value[1], minimum)
    v = _int(name, value, minimum)
    return v, v


def _sides(padding: object) -> tuple[int, int]:
    """Padding as (before, after): an int pads both sides alike; a pair gives each side."""
    if isinstance(padding, Sequence) and not isinstance(padding, str):
        if len(padding) != 2:
            raise SpecError(
                f"padding must be an int or a (before, after) pair, got {_show.repr(padding)}"
            )
        return _int("padding[0]", padding[0], 0), _int("padding[1]", padding[1], 0)
    p = _int("padding", padding, 0)
    return p, p


def _check_conv(
    size: int, kernel: int, padding: int | tuple[int, int], stride: int, dilation: int
) -> tuple[int, int, tuple[int, int], int, int]:
    return (
        _int("size", size, 1),
        _int("kernel", kernel, 1),
        _sides(padding),
        _int("stride", stride, 1),
        _int("dilation", dilation, 1),
    )


def conv_output_size(
    size: int,
    kernel: int,
    padding: int | tuple[int, int] = 0,
    stride: int = 1,
    dilation: int = 1,
) -> int:
    """Output length of a convolution or pooling window along one axis (§2.2).

    O = ⌊(I + P_before + P_after − D(K − 1) − 1) / S⌋ + 1; with P on each side and D = 1 that
    is the notes' ⌊(I − K + 2P)/S⌋ + 1. `padding` is P (both sides) or a (before, after) pair,
    as PyTorch's padding="same" puts the odd pixel of an even kernel after. This is the one
    output-size formula of cnnlab: the spec's shapes and the summary's trace call it.
    Raises SpecError when the (dilated) kernel exceeds the padded input, i.e. O would be < 1.

    >>> conv_output_size(28, 3, padding=1)
    28
    >>> conv_output_size(7, 3, stride=3)  # 7 - 3 = 4 is not a multiple of 3: floored
    2
    >>> conv_output_size(28, 4, padding=(1, 2))  # "same" for an even kernel
    28
    """
    size, kernel, (before, after), stride, dilation = _check_conv(
        size, kernel, padding, stride, dilation
    )
    return window_length(size, kernel, before, after, stride, dilation)


def window_length(
    size: int, kernel: int, before: int, after: int, stride: int, dilation: int
) -> int:
    """`conv_output_size` of arguments already known to be ints in range (the summary's
    windows are torch's own, which torch checked): the same formula and error, without the
    checks, a tenth of the time (the fixed-size lint steps through dozens of input sizes).

    >>> window_length(28, 3, 1, 1, 1, 1)
    28
    """
    extent = dilation * (kernel - 1) + 1
    padded = size + before + after
    if extent > padded:
        span = f"kernel {kernel}" + (
            f" (dilation {dilation}: spans {extent})" if dilation > 1 else ""
        )
        sides = f"2×padding {before}" if before == after else f"padding {before} + {after}"
        raise SpecError(
            f"{span} exceeds its padded input {padded} (size {size} + {sides}); "
            "use a smaller kernel or dilation, or more padding"
        )
    return (padded - extent) // stride + 1


def dropped_pixels(
    size: int,
    kernel: int,
    padding: int | tuple[int, int] = 0,
    stride: int = 1,
    dilation: int = 1,
) -> int:
    """Real input pixels at the right/bottom edge that no window reads: the floor problem (§2.2).

    When (I + P_before + P_after − D(K − 1) − 1) is not a multiple of S, the last stride does
    not fit and the trailing pixels are ignored. Counted: the real (not padding) pixels after
    the last real pixel any window's taps touch. The last window may read part of the right
    padding: then nothing real is dropped. Gaps *inside* the input (stride larger than the
    kernel, the holes of a dilated kernel) are not counted here. `padding` as in
    :func:`conv_output_size`.

    >>> dropped_pixels(7, 3, stride=3)  # windows read 0..2 and 3..5; pixel 6 is dropped
    1
    >>> dropped_pixels(28, 3, padding=1)
    0
    """
    n_out = conv_output_size(size, kernel, padding, stride, dilation)
    before = _sides(padding)[0]
    last_read = -1  # the largest real pixel index some window reads
    for j in reversed(range(n_out)):
        first = j * stride - before  # input index of window j's first tap
        if first + dilation * (kernel - 1) <= last_read:
            break  # this window and all earlier ones end before `last_read`
        if first > size - 1:
            continue  # the window lies wholly in the right padding
        taps = min(kernel - 1, (size - 1 - first) // dilation)  # last tap still inside
        if first + taps * dilation >= 0:
            last_read = max(last_read, first + taps * dilation)
    return size - 1 - last_read


def same_padding(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) zero padding that keeps the size at stride 1 (§2.3), as PyTorch pads.

    The total is t = D(K − 1), split (t // 2, t − t // 2): for an odd kernel the notes'
    P = (K − 1)/2 on each side; for an even kernel the extra pixel goes after (right/bottom),
    exactly like ``nn.Conv2d(..., padding="same")``.

    >>> same_padding(3), same_padding(4), same_padding(3, dilation=2)
    ((1, 1), (1, 2), (2, 2))
    """
    total = _int("dilation", dilation, 1) * (_int("kernel", kernel, 1) - 1)
    return total // 2, total - total // 2


def conv_params(
    kernel: Pair, in_channels: int, filters: int, bias: bool = True, groups: int = 1
) -> int:
    """Learnable parameters of a 2-D convolution (§1, §2.5).

    Params = (kh · kw · C_in / groups + bias) · filters: each filter is kh × kw × (C_in/groups)
    and makes one map. kernel is an int or a (kh, kw) pair.

    >>> conv_params(3, 64, 64)  # the notes' C² · 9 (+ 64 biases)
    36928
    """
    kh, kw = _pair("kernel", kernel, 1)
    in_channels = _int("in_channels", in_channels, 1)
    filters = _int("filters", filters, 1)
    groups = _int("groups", groups, 1)
    for name, n in (("in_channels", in_channels), ("filters", filters)):
        if n % groups:
            raise SpecError(f"{name} {n} is not divisible by groups {groups}")
    return (kh * kw * (in_channels // groups) + int(bool(bias))) * filters


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Learnable parameters of a fully connected layer: (in + bias) · out (§1).

    >>> linear_params(224 * 224 * 3, 1000)  # the notes' MLP on an RGB image: 150M+
    150529000
    """
    in_features = _int("in_features", in_features, 1)
    out_features = _int("out_features", out_features, 1)
    return (in_features + int(bool(bias))) * out_features


@dataclass(frozen=True)
class RF:
    """Receptive field of a unit along one axis, in input pixels (§3.2).

    size: how many input pixels one unit sees; jump: input pixels between neighbouring units;
    start: centre of the first (top/left) unit's field, as a pixel index (may be negative
    when padding puts that centre outside the image).
    """

    size: int
    jump: int
    start: float


INPUT_RF = RF(size=1, jump=1, start=0.0)  # an input pixel sees itself; pixel 0's centre is 0


@dataclass(frozen=True)
class LayerGeometry:
    """Kernel, stride, padding (each side) and dilation of a conv or pool; ints or (h, w)."""

    kernel: Pair
    stride: Pair = 1
    padding: Pair = 0
    dilation: Pair = 1


def rf_step(rf: RF, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> RF:
    """The receptive field after one more layer (§3.2), along one axis.

    size' = size + D(K − 1) · jump;  jump' = jump · S;  start' = start + (D(K − 1)/2 − P) · jump.

    >>> rf_step(INPUT_RF, 3)
    RF(size=3, jump=1, start=1.0)
    """
    kernel = _int("kernel", kernel, 1)
    stride = _int("stride", stride, 1)
    padding = _int("padding", padding, 0)
    dilation = _int("dilation", dilation, 1)
    return RF(*rf_grow(rf.size, rf.jump, rf.start, kernel, stride, padding, dilation))


def rf_grow(
    size: int, jump: int, start: float, kernel: int, stride: int, padding: int, dilation: int
) -> tuple[int, int, float]:
    """rf_step's formula on plain numbers, without its argument checks: for a caller that has
    checked the window already (the summary's trace, once per window and axis)."""
    reach = dilation * (kernel - 1)  # extent - 1, in this layer's input units
    return size + reach * jump, jump * stride, start + (reach / 2 - padding) * jump


def receptive_field(layers: Iterable[LayerGeometry | tuple | int], axis: int = 0) -> list[RF]:
    """Receptive field after each layer of a chain of convs/pools (§3.2), starting at a pixel.

    Each layer is a LayerGeometry, a tuple (kernel, stride=1, padding=0, dilation=1), or a bare
    int kernel. Fields may be (h, w) pairs; `axis` picks which (0 = height, 1 = width).
    Layers without geometry (activations, batch norm) leave the field unchanged: skip them.

    >>> receptive_field([3, 3, 3])[-1]  # three stacked 3×3 see what one 7×7 sees
    RF(size=7, jump=1, start=3.0)
    """
    if axis not in (0, 1):
        raise SpecError(f"axis must be 0 (height) or 1 (width), got {_show.repr(axis)}")
    rf, out = INPUT_RF, []
    for i, layer in enumerate(layers):
        try:
            if not isinstance(layer, LayerGeometry):
                layer = LayerGeometry(*layer) if isinstance(layer, tuple) else LayerGeometry(layer)
            k, s, p, d = (
                _pair(name, getattr(layer, name), minimum)[axis]
                for name, minimum in (("kernel", 1), ("stride", 1), ("padding", 0), ("dilation", 1))
            )
        except TypeError:
            raise SpecError(
                f"layer {i}: expected (kernel, stride, padding, dilation), got {_show.repr(layer)}"
            ) from None
        except SpecError as err:
            raise SpecError(f"layer {i}: {err}") from None
        rf = rf_step(rf, k, s, p, d)
        out.append(rf)
    return out
