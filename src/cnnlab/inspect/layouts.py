"""Where a tensor's channels are: dim 1 is the (N, C, H, W) convention, but a ConvNeXt block
permutes its map to (B, H, W, C) for LayerNorm and its pointwise Linear layers, and a ViT's
MLP acts on (B, N, C). `Layouts` follows the channels op by op through one forward pass, fed
by a `TorchFunctionMode` (`FollowLayouts`, or `ActivationSites`, which feeds its own). It also
notes which tensors a padding op made (`padded`): such a map is its input's with a border; and
which hold attention weights (`attention`): a (B, heads, N, N) softmax is no map of the image."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

_CONVS = frozenset({F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d})
_SWAPS = frozenset({"transpose", "swapaxes", "swapdims", "transpose_", "swapaxes_"})
_MOVES = frozenset({"movedim", "moveaxis"})
# F.pad is what nn.ZeroPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d, CircularPad2d
# and the 'same' padding modules of EfficientNet ports call; constant_pad_nd is its kernel
_PADS = frozenset({F.pad, torch.constant_pad_nd})
# ops that hand attention weights on as they are: the dropout on them (nn.Dropout in eval mode
# too), a copy; a matmul with the values or a sum with a residual makes something else
_KEEPS_WEIGHTS = frozenset({"dropout", "alpha_dropout", "feature_alpha_dropout", "clone",
                            "contiguous", "detach"})  # fmt: skip
# the ops nn.LSTM, nn.GRU and nn.RNN (tanh, relu) call, either layout: a tuple whose first
# tensor is the output, features last
_RECURRENT = frozenset({torch.lstm, torch.gru, torch.rnn_tanh, torch.rnn_relu})
_LAST = _RECURRENT | {F.multi_head_attention_forward}
# ops that lay a tensor's elements out in a new shape, in their order (nn.Flatten calls flatten)
_RESHAPES = frozenset({"view", "reshape", "flatten", "unflatten", "view_as", "reshape_as"})


class Layouts:
    """Which dim of each tensor of one forward holds its channels, followed op by op: a
    conv's output has them on dim 1, a Linear's (F.linear acts on the last dim) on the last;
    permute, transpose and movedim move them; an op whose output has the shape of an input
    (activations, norms, dropout, sums, scaling) keeps that input's; a view, reshape or
    flatten that keeps the last dim of a source holding its channels last keeps them last: a
    CRNN head's (T, B, H) LSTM output viewed as (T·B, H) for its Linear, and that Linear's
    (T·B, K) viewed back as (T, B, K). A tensor not followed (the images, any other
    reshape's output) has them on dim 1, the (N, C, ...) convention.
    `padded(t)`: t is the very tensor a padding op returned (F.pad, constant_pad_nd).
    `attention(t)`: t holds attention weights, a softmax over its last dim (of 3+ dims), or
    such a tensor after dropout: a ViT's or CvT's (B, heads, N, N), whose N·N follows the
    image's size as a map's H×W does."""

    def __init__(self) -> None:
        self._axis: dict[int, tuple[weakref.ref, int]] = {}
        self._padded: dict[int, weakref.ref] = {}
        self._weights: dict[int, weakref.ref] = {}

    def clear(self) -> None:
        self._axis.clear()
        self._padded.clear()
        self._weights.clear()

    def padded(self, t: Tensor) -> bool:
        return _holds(self._padded, t)

    def attention(self, t: Tensor) -> bool:
        return _holds(self._weights, t)

    def of(self, t: Tensor) -> int:
        ref, axis = self._axis.get(id(t), (None, 1))
        return axis if ref is not None and ref() is t else 1

    def _followed(self, t: Tensor) -> int | None:
        """t's channels' dim where an op noted it, else None."""
        ref, axis = self._axis.get(id(t), (None, None))
        return axis if ref is not None and ref() is t else None

    def note(self, func: Callable, args: tuple, kwargs: dict, result: object) -> None:
        """Follow `func(*args, **kwargs) = result`: a tensor, or a tuple whose own tensors
        are followed only where the op is known (`_tuple_axes`)."""
        if not isinstance(result, Tensor):
            for t, axis in _tuple_axes(func, result):
                self._axis[id(t)] = (weakref.ref(t), axis)
            return
        if func in _PADS:
            self._padded[id(result)] = weakref.ref(result)
        if _weights_op(func, args, kwargs, result, self.attention):
            self._weights[id(result)] = weakref.ref(result)
        axis = self._follow(func, args, kwargs, result)
        if axis is None or result.ndim < 2:
            return
        axis %= result.ndim
        # a 2-D tensor is noted only where an op put its channels on dim 1, its last: what a
        # view back to 3+ dims keeps as channels last; of() reads any 2-D one as dim 1
        if result.ndim > 2 or axis == 1:
            self._axis[id(result)] = (weakref.ref(result), axis)

    def _follow(self, func: Callable, args: tuple, kwargs: dict, result: Tensor) -> int | None:
        name = getattr(func, "__name__", "")
        source = args[0] if args and isinstance(args[0], Tensor) else None
        if func in _CONVS:
            return 1 if result.ndim > 2 else None  # an unbatched (C, L): none to note
        if func is F.linear:
            return -1
        if source is not None and name in ("permute", *_SWAPS, *_MOVES):
            return _moved(name, self.of(source) % source.ndim, args[1:], kwargs, source.ndim)
        if source is not None and name in _RESHAPES and self._keeps_last(source, result):
            return -1
        same = (a for a in (*args, *kwargs.values()) if isinstance(a, Tensor))
        return next((self._followed(a) for a in same if a.shape == result.shape), None)

    def _keeps_last(self, source: Tensor, result: Tensor) -> bool:
        """Whether a reshape of `source` to `result` keeps source's channels on the last dim:
        source holds them last (noted by an op) and its last dim is result's, unchanged."""
        last = self._followed(source) == source.ndim - 1
        return last and result.ndim >= 2 and result.shape[-1] == source.shape[-1]


def _tuple_axes(func: Callable, result: object) -> list[tuple[Tensor, int]]:
    """(tensor, its channels' dim) of a tuple result: F.multi_head_attention_forward's
    attn_output (L, B, C), channels last. It is one op to a TorchFunctionMode (its inside runs
    untraced), and nn.MultiheadAttention(batch_first=True) transposes it to (B, L, C): read as
    (N, C, ...) before that, its channels were put on dim 0. So is a recurrent op's output
    (`_RECURRENT`), (T, B, H) or (B, T, H): its hidden units last, as a Linear's; read as
    (N, C, ...) its time steps were the channels."""
    if func not in _LAST or type(result) is not tuple or not result:
        return []
    first = result[0]
    return [(first, first.ndim - 1)] if isinstance(first, Tensor) and first.ndim > 2 else []


def _holds(refs: dict[int, weakref.ref], t: Tensor) -> bool:
    """Whether t itself (not a later tensor at its address) was noted in refs."""
    ref = refs.get(id(t))
    return ref is not None and ref() is t


def _weights_op(
    func: Callable, args: tuple, kwargs: dict, result: Tensor, held: Callable[[Tensor], bool]
) -> bool:
    """Whether `func(*args, **kwargs) = result` gives attention weights: a softmax over the
    last dim of a 3+-dim tensor, or an op of `_KEEPS_WEIGHTS` on weights (`held`)."""
    name = getattr(func, "__name__", "")
    source = args[0] if args and isinstance(args[0], Tensor) else None
    if source is None or result.ndim < 3:
        return False
    if name == "softmax":
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        return isinstance(dim, int) and dim % result.ndim == result.ndim - 1
    return name in _KEEPS_WEIGHTS and result.shape == source.shape and held(source)


def _moved(name: str, axis: int, dims: tuple, kwargs: dict, ndim: int) -> int | None:
    """Where channels on `axis` go under permute(dims) / transpose(a, b) / movedim(src, dst)."""
    if name == "permute":
        order = dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims
        order = kwargs.get("dims", order)
        return [d % ndim for d in order].index(axis) if len(order) == ndim else None
    pair = [*dims, *kwargs.values()][:2]
    if len(pair) != 2 or not all(isinstance(d, int) for d in pair):
        return None  # movedim with sequences: not followed
    a, b = (d % ndim for d in pair)
    if name in _MOVES:
        order = [d for d in range(ndim) if d != a]
        order.insert(b, a)
        return order.index(axis)
    return b if axis == a else a if axis == b else axis


class FollowLayouts(TorchFunctionMode):
    """`with FollowLayouts() as layouts:` follows the channels of every tensor computed in the
    block; `layouts.of(t)` is the dim of t's channels (1 for a tensor not followed)."""

    def __init__(self) -> None:
        super().__init__()
        self.layouts = Layouts()

    def __enter__(self) -> Layouts:
        super().__enter__()
        return self.layouts

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        self.layouts.note(func, args, kwargs, result)
        return result
