"""Where a conv's input sits in a tensor made before it. Which channels of a larger tensor a
conv reads when the forward hands it a slice (one half of a `torch.chunk`, a `split`,
`h[:, 1::2]`): the dot-product panel numbers the conv's input channels as channels of the
tensor split, as the model's author knows them. Which pixels of a smaller tensor a padded
one holds (F.pad, in a padding module or a forward), and what a value computed from the whole
map (a global pool, an SE gate) and a map multiplied by it see: the receptive field of each
pixel. A window's kernel, stride, padding and dilation are read here once (`window`), from a
layer's attributes or a functional call's arguments, as torch reads them."""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from cnnlab import geometry


@dataclass(frozen=True)
class ChannelSlice:
    """Which channels of a larger (1, C, H, W) tensor a conv's input is: its input channel k
    is channel start + k·step of that tensor, of C channels; `source` names that tensor (a
    layer's label, "input" for the image), None for one the forward made itself (F.relu)."""

    source: str | None
    channels: int
    start: int
    step: int

    def of(self, k: int) -> int:
        return self.start + k * self.step


class Sources:
    """The tensors a forward goes on with (a layer's output, the image), by id, with whose
    they are and their version, so that a conv reading a chunk of one can name it. Held
    weakly: keeping them raises the pass's peak memory, and an id reused after one is freed
    fails the identity check. One changed in place since (F.relu_ of a layer's output) holds
    other values than that layer gave: its version moved, and it is nobody's (None, a tensor
    the forward made)."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[weakref.ref, str, int | None]] = {}

    def keep(self, t: Tensor, source: str) -> None:
        self._made[id(t)] = (weakref.ref(t), source, _version(t))

    def whose(self, t: Tensor | None) -> str | None:
        ref, source, version = self._made.get(id(t), (None, None, None))
        return source if ref is not None and ref() is t and _version(t) == version else None


def _version(t: Tensor) -> int | None:
    """t's version counter, which each in-place op on t or on a view of it moves (None for
    an inference tensor, which has none)."""
    return None if t.is_inference() else t._version


def channel_slice(t: Tensor, source: str | None = None) -> ChannelSlice | None:
    """Where view `t` (1, c, H, W) sits on the channels of the tensor it was taken from
    (t._base, read from the strides and storage offsets); None when t is no such view (its
    own tensor, the whole base, or a view along other dims than the channels)."""
    base = t._base
    if base is None or t.dim() != 4 or base.dim() != 4 or t.shape[0] != base.shape[0]:
        return None
    other = (0, 2, 3)
    if t.shape[2:] != base.shape[2:] or any(t.stride(d) != base.stride(d) for d in other):
        return None
    unit, c, total = base.stride(1), t.shape[1], base.shape[1]
    if unit <= 0 or c == total:  # a broadcast channel dim, or the whole tensor
        return None
    start, off = divmod(t.storage_offset() - base.storage_offset(), unit)
    step, odd = divmod(t.stride(1), unit) if c > 1 else (1, 0)  # one channel: no step
    if off or odd or step < 1 or start < 0 or start + step * (c - 1) >= total:
        return None
    return ChannelSlice(source, total, start, step)


def input_channels(sliced: ChannelSlice | None, first: int, count: int) -> dict[str, Any]:
    """The numbers of the input channels shown (the conv's `first`..`first + count`), as the
    user knows them: a conv reading a chunk of a larger tensor (torch.chunk(h, 2, dim=1))
    reads its channels 4-7, say, not 0-3; `input_slice` says of which tensor, or is None."""
    if sliced is None:
        return {"input_channels": list(range(first, first + count)), "input_slice": None}
    return {
        "input_channels": [sliced.of(first + k) for k in range(count)],
        "input_slice": dataclasses.asdict(sliced),
    }


def padded_field(rf: tuple[geometry.RF, geometry.RF], pad: Any) -> tuple[geometry.RF, geometry.RF]:
    """The field (height, width) of F.pad(x, pad)'s pixels, x's field being rf: its pixel k
    is x's pixel k − P (P: the pad before the axis, F.pad's pairs from the last axis back;
    negative crops), so size and jump stay and start' = start − P · jump."""
    pad = [int(p) for p in pad] + [0] * 4
    (h, w), top, left = rf, pad[2], pad[0]
    return (
        geometry.RF(h.size, h.jump, h.start - top * h.jump),
        geometry.RF(w.size, w.jump, w.start - left * w.jump),
    )


def whole_axis(rf: geometry.RF, n: int) -> geometry.RF:
    """The field of one value computed from all n units of an axis (a global average pool, a
    mean over H and W): the union of their fields, a window of all n units,
    rf_step(rf, kernel=n, stride=n)."""
    return geometry.rf_step(rf, n, n)


def covering(rf: geometry.RF, n: int, box: geometry.RF) -> geometry.RF:
    """The field of n units of field rf, each combined with one broadcast value of field `box`
    (an SE gate: x · g, g from a global pool): unit i sees its own field and box's. As one
    field centred on each unit (jump and start kept): size' = max(size, 2e + 1), e the
    largest distance from a unit's centre (start + i·jump) to box's far edge."""
    lo, hi = box.start - (box.size - 1) / 2, box.start + (box.size - 1) / 2
    first, last = rf.start, rf.start + (n - 1) * rf.jump
    reach = max(hi - first, last - lo)
    return geometry.RF(max(rf.size, math.ceil(2 * reach) + 1), rf.jump, rf.start)


# Ops whose smaller output is a part of their input, not a value computed from all of it.
_PARTS = frozenset({Tensor.__getitem__, Tensor.narrow, torch.narrow, Tensor.select, torch.select})

# Windows a forward slides itself (`F.max_pool2d(F.relu(self.conv1(x)), 2)`, the PyTorch
# tutorials' way), with the names of their arguments in order: no module hook sees them, and
# the conv after such a pool was drawn with the 1×1 field of the image's own pixels.
_WINDOWS = {
    F.max_pool2d: ("input", "kernel_size", "stride", "padding", "dilation"),
    torch.max_pool2d: ("input", "kernel_size", "stride", "padding", "dilation"),
    F.avg_pool2d: ("input", "kernel_size", "stride", "padding"),
    torch.conv2d: ("input", "weight", "bias", "stride", "padding", "dilation"),
}


def window_geometry(func, args: tuple, kwargs: dict) -> geometry.LayerGeometry:
    """The window of a `_WINDOWS` call, from its arguments (`window`); torch's defaults where
    they are not given (a conv's stride 1, a pool's its kernel)."""
    given = {**dict(zip(_WINDOWS[func], args, strict=False)), **kwargs}
    if func is torch.conv2d:
        kernel, stride = given["weight"].shape[2:], given.get("stride", 1)
    else:
        kernel, stride = given["kernel_size"], given.get("stride")
    return window(kernel, stride, given.get("padding", 0), given.get("dilation", 1))


def window(
    kernel: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1
) -> geometry.LayerGeometry:
    """Kernel, stride, padding before and dilation of a conv or pool as (h, w) pairs, read as
    torch reads them in a call's arguments or a module's attributes: an int or a sequence of
    one (both axes) or two; stride None or [] (a pool's default): the kernel; padding as
    `padding_sides`. The explorer's one reading of a window, for layers and functional calls."""
    kernel = _pair(kernel)
    stride = _pair(stride) if stride is not None else kernel
    (top, _), (left, _) = padding_sides(padding, kernel, dilation)
    return geometry.LayerGeometry(kernel, stride or kernel, (top, left), _pair(dilation))


def padding_sides(padding: Any, kernel: Any, dilation: Any = 1) -> tuple[tuple[int, int], ...]:
    """((top, bottom), (left, right)) zeros a conv or pool adds: an int or pair (`_pair`) on
    both sides alike, 'valid' none, 'same' D(K − 1) split as torch splits it, the odd pixel
    after (geometry.same_padding, §2.3)."""
    if isinstance(padding, str):  # 'valid' or 'same' (stride 1)
        kernel, dilation = _pair(kernel), _pair(dilation)
        return tuple(
            (0, 0) if padding == "valid" else geometry.same_padding(k, d)
            for k, d in zip(kernel, dilation, strict=True)
        )
    return tuple((p, p) for p in _pair(padding))


def _pair(value: Any) -> tuple:
    """torch's int[2]: an int for both axes, or a sequence of one (both axes) or two values
    (nn.MaxPool2d(3, stride=[2]) keeps its [2], and pools with stride 2 on both axes)."""
    pair = tuple(value) if isinstance(value, Iterable) else (value, value)  # as torch's _pair
    return pair * 2 if len(pair) == 1 else pair


def window_field(
    rf: tuple[geometry.RF, geometry.RF], g: geometry.LayerGeometry
) -> tuple[geometry.RF, geometry.RF]:
    """The (height, width) field of a window g slid over a map of field rf: each window's
    fields together (geometry.rf_step on each axis)."""
    return tuple(
        geometry.rf_step(rf[a], g.kernel[a], g.stride[a], g.padding[a], g.dilation[a])
        for a in (0, 1)
    )


class Pads(TorchFunctionMode):
    """Follows the ops between layers for `Fields` (`seen`: a Fields): each F.pad(x, pad) = y
    (a padding module pads with it, as a forward that pads its conv's input itself does),
    each window a forward slides itself (`_WINDOWS`: F.max_pool2d, F.avg_pool2d, F.conv2d),
    and every other op's output by `Fields.combined`."""

    def __init__(self, seen: Fields) -> None:
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        y = func(*args, **kwargs)
        if not isinstance(y, Tensor):
            return y
        if func is F.pad:
            x = args[0] if args else kwargs.get("input")
            pad = args[1] if len(args) > 1 else kwargs.get("pad")
            if isinstance(x, Tensor) and pad is not None:
                self.seen.padded(x, pad, y)
        elif func in _WINDOWS and not self.seen.inside:
            x = args[0] if args else kwargs.get("input")
            if isinstance(x, Tensor):
                self.seen.windowed(x, window_geometry(func, args, kwargs), y)
        elif func not in _PARTS:
            self.seen.combined([*_tensors(args), *_tensors(kwargs.values())], y)
        return y


def _tensors(values) -> list[Tensor]:
    """The tensors among values, and inside lists and tuples of them (torch.cat's)."""
    found = []
    for v in values:
        if isinstance(v, Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            found += [t for t in v if isinstance(t, Tensor)]
    return found


def _is_global(t: Tensor) -> bool:
    """One value per image and channel: (B, C) or (B, C, 1, 1)."""
    return t.dim() == 2 or (t.dim() == 4 and t.shape[2:] == (1, 1))


class Fields:
    """The (height, width) receptive field of each tensor one forward pass of x makes, as
    `receptive_fields` follows them: by id, and by storage for the views of a tensor."""

    def __init__(self, x: Tensor) -> None:
        self.fields: dict[int, tuple[geometry.RF, geometry.RF]] = {id(x): (geometry.INPUT_RF,) * 2}
        self.made: list[Tensor] = [x]  # kept alive so that no id is reused during the pass
        # the field of the last tensor made on each storage: a view of it (a chunk) has it
        self.on_storage = {x.untyped_storage().data_ptr(): self.fields[id(x)]}
        self.inside = 0  # how many layers' forwards run now (their hooks follow their ops)

    def known(self, t: Tensor) -> tuple[geometry.RF, geometry.RF] | None:
        """t's field if it was given one: its own, else its storage's (a view of it)."""
        if id(t) in self.fields:
            return self.fields[id(t)]
        return self.on_storage.get(t.untyped_storage().data_ptr())

    def of(self, t: Tensor) -> tuple[geometry.RF, geometry.RF] | None:
        """t's field: its own, its storage's, else the widest of the tensors of its size."""
        if (rf := self.known(t)) is not None:
            return rf
        same = [
            self.fields[id(u)]
            for u in self.made
            if u.shape[2:] == t.shape[2:] and id(u) in self.fields
        ]
        return max(same, key=lambda rf: rf[0].size + rf[1].size, default=None)

    def set(self, y: Tensor, rf: tuple[geometry.RF, geometry.RF]) -> None:
        self.fields[id(y)] = self.on_storage[y.untyped_storage().data_ptr()] = rf
        self.made.append(y)

    def padded(self, x: Tensor, pad: Any, y: Tensor) -> None:
        """`Pads`' callback: y = F.pad(x, pad) has x's field shifted by the pad."""
        if (rf := self.of(x)) is not None and x.dim() == y.dim() == 4:
            self.set(y, padded_field(rf, pad))

    def windowed(self, x: Tensor, g: geometry.LayerGeometry, y: Tensor) -> None:
        """`Pads`' callback: y, a window `g` slid over x outside any layer, sees each window's
        fields together (`window_field`)."""
        if (rf := self.of(x)) is not None and x.dim() == y.dim() == 4:
            self.set(y, window_field(rf, g))

    def combined(self, inputs: list[Tensor], y: Tensor) -> None:
        """The field of y, which an op between layers made from `inputs`, where the whole map
        reaches it: a value per image and channel computed from a map (a global pool, a mean
        over H and W) sees every unit of it (`whole_axis`); one computed from such values
        alone (the SE gate's convs, sigmoid, a view to (B, C, 1, 1)) sees what they see; a
        map combined with one (x · g) sees that too (`covering`). Another op between layers
        (F.relu, a sum of branches) gives its map the widest field of its inputs of its size,
        when it is made: a shortcut conv reading a functional ReLU's output after a wider
        branch was computed took that branch's field (`of`: the widest of its size made so
        far). Ops inside a layer are left to its hook."""
        if _is_global(y):
            maps = [t for t in inputs if t.dim() == 4 and t.shape[2] * t.shape[3] > 1]
            rf = self.of(maps[0]) if maps else None
            if rf is not None:
                n = maps[0].shape[2:]
                self.set(y, (whole_axis(rf[0], n[0]), whole_axis(rf[1], n[1])))
            elif not maps and (found := self._widest(inputs)) is not None:
                self.set(y, found)
            return
        if y.dim() != 4:
            return
        box = self._widest([g for g in inputs if g.dim() == 4 and g.shape[2:] == (1, 1)])
        if box is None and self.inside:
            return
        same = [t for t in inputs if t.dim() == 4 and t.shape[2:] == y.shape[2:]]
        rf = max(filter(None, map(self.of, same)), key=_span, default=None)
        if rf is not None and box is None:  # a sum of branches, a ReLU: its widest input's
            self.set(y, rf)
        elif rf is not None:
            h, w = y.shape[2:]
            self.set(y, (covering(rf[0], h, box[0]), covering(rf[1], w, box[1])))

    def _widest(self, ts: list[Tensor]) -> tuple[geometry.RF, geometry.RF] | None:
        return max(filter(None, map(self.known, ts)), key=_span, default=None)


def _span(rf: tuple[geometry.RF, geometry.RF]) -> int:
    return rf[0].size + rf[1].size
