"""Where the images are in a layer's output: dim 0 in torch's (N, C, H, W) layout and a
batch_first sequence's (B, T, F), dim 1 in the sequence-first one, (T, B, F): an nn.LSTM,
nn.GRU or nn.MultiheadAttention without batch_first, a CRNN's columns permuted to
(W, B, C·H) for CTC. One forward's shapes cannot tell which (T may equal B: a seq-first
LSTM's 8 columns in a batch of 8 images were read as 8 images); two forwards of different
batch sizes do: the images' axis is the one whose size follows theirs, as the summary finds
it (design.summary.batch). Found from the shapes, not from a module's batch_first: a
permute in the user's forward makes the layout as well, on any module.
"""

from __future__ import annotations

from torch import Tensor, nn

from cnnlab.design.summary.batch import batch_axis_of
from cnnlab.errors import ExplainError
from cnnlab.inspect.calls import layer_calls
from cnnlab.inspect.logits import OutputSelector
from cnnlab.inspect.order import channel_dim

# the batch sizes compared: the calls of a forward of 2 images, each against its call in a
# forward of 1 (the cheapest; the summary's pair), or of 3 where a call's rank differs
# between those two: a squeeze() in the forward dropped one image's batch axis, and a
# (T, B, F) with T = 2 was read as 2 images for want of an axis to compare
SIZES = (2, 1, 3)


def call_axes(
    model: nn.Module, x: Tensor, output: OutputSelector = None
) -> list[tuple[str, str, tuple, int | None]]:
    """(label, module name, output shape, images' axis) of every call with a tensor output
    (`layer_calls`), the shape that of a forward of 2 copies of x's first image. The images'
    axis: the one axis whose size is 2 there and 1 in a forward of 1, no other axis
    differing (dim 0 where it is), or 3 in a forward of 3 where a call's rank differs
    between the first two; None where no axis is (a window attention's (B·windows, ...), a
    block the forward calls once per image, a position table: no row per image). A call
    only the forward of 2 makes (calls that follow the batch size): dim 0 if its size is 2
    there."""
    two, one, three = SIZES
    calls = layer_calls(model, x[:1].expand(two, *x.shape[1:]), output)
    other = _shapes(model, x, one, output)
    if any(len(other.get(label, shape)) != len(shape) for label, _, shape in calls):
        one, other = three, _shapes(model, x, three, output)
    sizes = (two, one)
    return [
        (label, name, shape, _axis(shape, other.get(label), sizes)) for label, name, shape in calls
    ]


def _shapes(model: nn.Module, x: Tensor, n: int, output: OutputSelector) -> dict[str, tuple]:
    """{call label: output shape} of a forward of n copies of x's first image."""
    return {
        label: shape
        for label, _, shape in layer_calls(model, x[:1].expand(n, *x.shape[1:]), output)
    }


def batch_axes(model: nn.Module, x: Tensor, output: OutputSelector = None) -> dict[str, int]:
    """{call label: the axis of its output that holds the images} (`call_axes`) of the calls
    whose images are off dim 0 (a sequence-first LSTM's (T, B, F): 1); a call not named has
    them on dim 0, or has no row per image (which `per_image` refuses)."""
    return {label: axis for label, _, _, axis in call_axes(model, x, output) if axis}


def layer_axes(
    model: nn.Module, x: Tensor, layer: str, output: OutputSelector = None
) -> tuple[int, int]:
    """(its images' axis, its channels' axis) of `layer`'s output on x (`call_axes`,
    `inspect.channel_dim`): what `images_first` takes to read it as (B, C, ...), as the
    probe and activation maximisation read it. ExplainError for a layer with no axis of one
    row per image (a CRNN head's Linear on (T·B, K), a window attention's rows): its row i
    is not image i, which activation maximisation would read it as."""
    found = {label: (shape, axis) for label, _, shape, axis in call_axes(model, x, output)}
    shape, axis = found.get(layer, ((), 0))
    if axis is None:
        raise ExplainError(
            f"layer {layer!r} gives {tuple(shape)} for 2 images: no axis of its output holds "
            "one row per image (its rows are steps or windows of every image at once), so its "
            "units are no one image's; choose a layer before the reshape that made it, or after "
            "the one that undoes it"
        )
    return axis, channel_dim(model, x, layer, output)


def _axis(shape: tuple, other: tuple | None, sizes: tuple[int, int]) -> int | None:
    """`batch_axis_of(shape, other, sizes)`, the summary's rule: the one axis whose size goes
    sizes[0] -> sizes[1], no other axis differing, None where none does; dim 0 if its size
    is sizes[0] where `other` is None (no call to compare)."""
    if other is None:
        return 0 if shape and shape[0] == sizes[0] else None
    return batch_axis_of(shape, other, sizes)


def images_first(t: Tensor, batch: int = 0, channel: int = 1) -> Tensor:
    """t with its images' axis `batch` on dim 0 and its channels (t's dim `channel`) on dim 1,
    its other dims in their order. Where `channel` is `batch` (the default dim 1 of a tensor
    whose channels no op showed, its images on dim 1), only the images move: a seq-first
    (T, B, F) reads as (B, T, F)."""
    if t.ndim < 2:
        return t
    batch, channel = batch % t.ndim, channel % t.ndim
    order = [batch, *(d for d in range(t.ndim) if d != batch)]
    return t.movedim(batch, 0).movedim(order.index(channel) if channel != batch else 1, 1)
