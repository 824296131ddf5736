"""Where a conv's input sits in a tensor made before it. Which channels of a larger tensor a
conv reads when the forward hands it a slice (one half of a `torch.chunk`, a `split`,
`h[:, 1::2]`): the dot-product panel numbers the conv's input channels as channels of the
tensor split, as the model's author knows them. Which pixels of a smaller tensor a padded
one holds (F.pad, in a padding module or a forward): the receptive field of each pixel."""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass
from typing import Any

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


class Pads(TorchFunctionMode):
    """Calls seen(x, pad, y) for each F.pad(x, pad) = y in the block: a padding module
    (nn.ZeroPad2d) pads with it, as a forward that pads its conv's input itself does."""

    def __init__(self, seen) -> None:
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        y = func(*args, **kwargs)
        if func is F.pad and isinstance(y, Tensor):
            x = args[0] if args else kwargs.get("input")
            pad = args[1] if len(args) > 1 else kwargs.get("pad")
            if isinstance(x, Tensor) and pad is not None:
                self.seen(x, pad, y)
        return y


class Fields:
    """The (height, width) receptive field of each tensor one forward pass of x makes, as
    `receptive_fields` follows them: by id, and by storage for the views of a tensor."""

    def __init__(self, x: Tensor) -> None:
        self.fields: dict[int, tuple[geometry.RF, geometry.RF]] = {id(x): (geometry.INPUT_RF,) * 2}
        self.made: list[Tensor] = [x]  # kept alive so that no id is reused during the pass
        # the field of the last tensor made on each storage: a view of it (a chunk) has it
        self.on_storage = {x.untyped_storage().data_ptr(): self.fields[id(x)]}

    def of(self, t: Tensor) -> tuple[geometry.RF, geometry.RF] | None:
        """t's field: its own, its storage's, else the widest of the tensors of its size."""
        if id(t) in self.fields:
            return self.fields[id(t)]
        viewed = self.on_storage.get(t.untyped_storage().data_ptr())
        if viewed is not None:
            return viewed
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
