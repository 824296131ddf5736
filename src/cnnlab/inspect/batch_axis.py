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

from cnnlab.inspect.calls import layer_calls
from cnnlab.inspect.logits import OutputSelector

# the batch sizes compared: the calls of a forward of 2 images, each against its call in a
# forward of 1 (the summary's pair; one image alone hides which axis of size 1 is its)
SIZES = (2, 1)


def call_axes(
    model: nn.Module, x: Tensor, output: OutputSelector = None
) -> list[tuple[str, str, tuple, int | None]]:
    """(label, module name, output shape, images' axis) of every call with a tensor output
    (`layer_calls`), the shape that of a forward of 2 copies of x's first image. The images'
    axis: the first axis whose size is 2 there and 1 in a forward of 1 (dim 0 where it
    is); None where no axis is (a window attention's (B·windows, ...), a block the
    forward calls once per image, a position table: no row per image). A call only the
    forward of 2 makes (calls that follow the batch size): dim 0 if its size is 2 there."""
    first = x[:1]
    two, one = (layer_calls(model, first.expand(n, *x.shape[1:]), output) for n in SIZES)
    alone = {label: shape for label, _, shape in one}
    return [(label, name, shape, _axis(shape, alone.get(label))) for label, name, shape in two]


def batch_axes(model: nn.Module, x: Tensor, output: OutputSelector = None) -> dict[str, int]:
    """{call label: the axis of its output that holds the images} (`call_axes`) of the calls
    whose images are off dim 0 (a sequence-first LSTM's (T, B, F): 1); a call not named has
    them on dim 0, or has no row per image (which `per_image` refuses)."""
    return {label: axis for label, _, _, axis in call_axes(model, x, output) if axis}


def _axis(two: tuple, one: tuple | None) -> int | None:
    """The first axis whose size goes 2 -> 1 from `two` to `one`, None where none does; where
    the shapes have no axis to compare (a squeeze() of one image's batch), dim 0 if its size
    is 2."""
    if one is None or len(one) != len(two):
        return 0 if two and two[0] == SIZES[0] else None
    follows = [k for k, sizes in enumerate(zip(two, one, strict=True)) if sizes == SIZES]
    return follows[0] if follows else None


def images_first(t: Tensor, batch: int = 0, channel: int = 1) -> Tensor:
    """t with its images' axis `batch` on dim 0 and its channels (t's dim `channel`) on dim 1.
    A channel dim that is the images' is the convention of a tensor whose channels no op
    showed (dim 1): it reads as dim 1 of the moved tensor, so a seq-first LSTM's (T, B, F)
    reads as (B, T, F), as the batch_first LSTM's output does."""
    if t.ndim < 2:
        return t
    batch, channel = batch % t.ndim, channel % t.ndim
    order = [batch, *(d for d in range(t.ndim) if d != batch)]
    return t.movedim(batch, 0).movedim(order.index(channel) if channel != batch else 1, 1)
