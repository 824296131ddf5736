"""The tag a traced tensor carries, and the pure rules that make an output's tag from its
inputs' where values are moved rather than computed (permute, split, index) or combined
element-wise across branches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from cnnlab import geometry
from cnnlab.design.activations import ACTIVATIONS, activation_of, activation_of_call
from cnnlab.design.summary import axes as ax
from cnnlab.design.summary import calls as C
from cnnlab.design.summary.blocked import Blocked, union
from cnnlab.design.summary.facts import Field, Window, record
from cnnlab.design.summary.products import windowed

TAG = "_cnnlab_tag"
# on a tensor some row showed as its output, until a call changes it in place (a tensor
# attribute, not a Tag field: a Tag is shared by tensors, and marking it made a new one)
ROW = "_cnnlab_row"
# on a tensor on the path after a conv/linear (Tag.linear set) once a call has read it: a
# second reader means that layer's output is used twice (`Roles._use`)
USED = "_cnnlab_used"
# on a tensor a softmax or sigmoid made, or a reshape of one: (layer, what made it, whether a
# module); None once a call changed it in place (facts.OutputFact, `Tracer.ended`)
PROBABILITIES = "_cnnlab_probabilities"


class Tag(NamedTuple):
    """What the tracer knows about one tensor (stored on it as ``_cnnlab_tag``)."""

    rf: tuple[Field, Field] | None  # receptive field along height, width; None: not followed
    axes: ax.Axes = (None, None)  # where height and width are; None: merged or reduced
    chain: Any = ()  # facts.Chain, SIZE_FREE or None (not followed)
    lost: str | None = None  # the function that lost the field
    linear: tuple[int, tuple[Window, ...]] | None = None  # WeightFact index, pools since
    squashed_by: str | None = None  # last saturating activation through linear ops only
    flat: tuple[str, tuple[int, ...], Any, Any] | None = None  # (layer, shape, chain, pool)
    pad: tuple[int, int, int, int] | None = None  # zeros an F.pad just put around the map
    last_pool: tuple[str, Window] | None = None  # the last fixed pooling window on the way


def retag(t: Tensor, tag: Tag) -> None:
    """A call's output gets its tag; one changed in place is no row's output any more."""
    setattr(t, TAG, tag)
    if getattr(t, ROW, False):
        setattr(t, ROW, False)
    if getattr(t, USED, False):  # a new value: no call has read it yet
        setattr(t, USED, False)


def replaced(tag: Tag, **changes: Any) -> Tag:
    """tag._replace(**changes), or tag itself where they change nothing (most calls clear
    fields that are already None). namedtuple's _replace costs 0.85 µs, this 0.35-0.6."""
    values = None
    for key, value in changes.items():
        at = _AT[key]
        current = tag[at]
        if value is not current and value != current:  # axes: often an equal new tuple
            if values is None:
                values = list(tag)
            values[at] = value
    return tag if values is None else tuple.__new__(Tag, values)  # namedtuple's _make


_AT = {name: i for i, name in enumerate(Tag._fields)}  # a Tag field's position


def cleared(tag: Tag, pad: bool = True) -> Tag:
    """replaced(tag, linear=None, squashed_by=None, flat=None), and pad=None if `pad`: the
    lint facts of a path through linear ops dropped (after a call not linear in its input),
    and F.pad's zeros. Written out for the calls of one input: 0.6 -> 0.2 µs."""
    if tag.linear is None and tag.squashed_by is None and tag.flat is None:
        if not pad or tag.pad is None:
            return tag
    rf, axes, chain, lost, _, _, _, zeros, pool = tag
    return record(Tag, (rf, axes, chain, lost, None, None, None, None if pad else zeros, pool))


def unpadded(tag: Tag) -> Tag:
    """replaced(tag, pad=None), written out: F.pad's zeros are no longer around the map."""
    if tag.pad is None:
        return tag
    return record(Tag, (*tag[:7], None, tag.last_pool))


_PIXEL = Field(geometry.INPUT_RF.size, geometry.INPUT_RF.jump, geometry.INPUT_RF.start)
INPUT_TAG = Tag((_PIXEL, _PIXEL), (2, 3))
# the field of an output no input pixel reaches: every traced call of a tensor made from the
# image tags its output, so a row's untagged output read none of it (a relative-position bias)
NO_PIXEL = Field(0, 0, 0.0)
ACTIVATION_FUNCTIONS = frozenset(f for a in ACTIVATIONS.values() for f in a.functions)
# ops through which the lint facts of §4.2/§5.2 pass: linear in their input
LINEAR_PATH = (
    C.COLLAPSIBLE
    | C.AVG_POOL
    | C.ADAPTIVE_AVG
    | C.RESHAPE
    | C.PERMUTE
    | C.SAME
    | C.JOIN
    | C.SPLIT
    | C.GETITEM
    | C.PAD
    | C.both("add", "sub", "mean", "add_", "sub_")
    | C.fns("__add__", "__radd__", "__iadd__", "__sub__", "__isub__", owner=C.T)
)


# the calls `Roles._tag` sends to `_elementwise` whatever their arguments, straight: same
# values, norm-like or pointwise (add, mul, relu), and of none of the roles it asks before
_ROLES_BEFORE = C.LINEAR | C.PAD | C.ADAPTIVE | C.RESHAPE | C.PERMUTE | C.SPLIT | C.GETITEM
_ROLES_BEFORE |= C.ROLL | C.JOIN | C.STACK | C.REDUCE
ELEMENTWISE = frozenset(
    f
    for f in C.SAME | C.NORM_LIKE | C.SHIFTS | C.SCALES | C.DIVIDES | ACTIVATION_FUNCTIONS
    if f not in _ROLES_BEFORE and (f in C.SAME or f in C.NORM_LIKE or C.pointwise(f))
)


def global_rf(rf: Field, n: int, extent: int) -> Field:
    """A unit that pools all n positions of a map whose units have field `rf` (one axis).
    An empty map (n = 0: AdaptiveAvgPool2d((0, 3))) counts as one position: a jump of 0
    would divide by zero later on."""
    n = n or 1
    size, jump, start = rf
    size += (n - 1) * jump  # (not max(): a matmul makes four of these)
    return record(Field, (size if size > extent else extent, jump * n, start + (n - 1) * jump / 2))


def blocks(in_shape, out_shape, axes: ax.Axes, tag: Tag) -> tuple[ax.Axes, Tag]:
    """A reshape that cut a spatial axis in two, outer first ((B, C, H, W) -> (B, C, h, p, w,
    p): einops' max pooling "b c (h p1) (w p2) -> b c h w", its space-to-depth): the outer
    part is the axis, each unit a block of p at stride p, whose field it gets (as F.unfold's
    windows: an upper bound for the p values inside, each one pixel until something mixes
    them); the inner part is no image axis. `axes`: ax.reshape's; tag's axes before it."""
    (h, w), (a0, a1) = tag.axes, axes
    if h == w:  # tokens (or none): no grid of positions to cut
        return axes, tag
    cut0 = None if a0 is not None or h is None else ax.split(in_shape, out_shape, h)
    cut1 = None if a1 is not None or w is None else ax.split(in_shape, out_shape, w)
    if cut0 is None and cut1 is None:
        return axes, tag
    r0, r1 = tag.rf
    if cut0 is not None:
        (a0, p), r = cut0, r0
        r0 = windowed(r, p, p)
    if cut1 is not None:
        (a1, p), r = cut1, r1
        r1 = windowed(r, p, p)
    return (a0, a1), record(Tag, ((r0, r1), (a0, a1), None, *tag[3:]))


def all_lost(tagged: list) -> bool:
    """Every tagged input has lost its field (an einsum of two lost tensors adds no news)."""
    for _, tag in tagged:
        if tag.rf is not None:
            return False
    return True


def sees_all(rf: tuple[Field, Field], image: tuple[int, int]) -> bool:
    """Every unit's field spans the whole (H, W) image."""
    return rf[0].size >= image[0] and rf[1].size >= image[1]


def tiled(rf: Field, extent: int, n: int) -> Field:
    """One axis of a (B, C, H, W) map of n positions made from a (B, features) vector whose
    units each see the whole image (a decoder's Linear, reshaped; not a 3-D reshape, more
    often tokens, nor Swin's windows put back as a (B, H, W, C) map): its positions are no
    places in the image, so they are spaced as n tiles of its `extent` pixels would be,
    jump = ⌊extent / n⌋ (at least 1), the first centred on the first tile (a decoder's last
    upsampling then has units a pixel apart)."""
    jump = max(1, extent // n)
    return Field(size=rf.size, jump=jump, start=(jump - 1) / 2)


# --- rules ----------------------------------------------------------------------------------


def tagged_inputs(args: tuple, kwargs: dict) -> list[tuple[Tensor, Tag]]:
    """(tensor, tag) of every input that carries a tag, lists (torch.cat) included."""
    found = []
    for a in (*args, *kwargs.values()) if kwargs else args:
        if type(a) is list or type(a) is tuple:  # (no 1-tuple per argument: 0.5 -> 0.3 µs)
            for t in a:
                tag = getattr(t, TAG, None)
                if tag is not None:
                    found.append((t, tag))
            continue
        tag = getattr(a, TAG, None)
        if tag is not None:
            found.append((a, tag))
    return found


def combine(tagged: list, out: Tensor, align: bool) -> tuple[tuple[Field, Field], ax.Axes, Tag]:
    """Field and axes of an element-wise result of several tagged inputs, and the tag of the
    input it follows. Per axis the largest field wins (through branches: the largest), its
    jump and start from an input that spans the output along that axis: a gate broadcast
    from 1×1 (squeeze-and-excitation) widens the field, not the spacing of the units. Only
    an input whose axis lies where the output's does spans it: a concatenation of maps
    turned differently (coordinate attention's (B, C, H, 1) and (B, C, W, 1) along dim 2)
    takes no spacing of the other's height (its length-1 dim 3, the columns' 16 px)."""
    out_shape, out_dim = out.shape, out.dim()
    alike = _spanning(tagged, out_shape, out_dim, align)
    if alike is not None:
        return alike
    # loops, not generators and max(key=): a third of the time (GhostNet joins 55 times)
    spans = []  # (tag, axes in the output, spans along height, width)
    for t, tag in tagged:
        shape, n = t.shape, t.dim()
        axes = ax.aligned(n, out_dim, tag.axes) if align and n != out_dim else tag.axes
        offset = out_dim - n if align else 0
        h, w = axes
        full = (
            h is not None and shape[h - offset] == out_shape[h],
            w is not None and shape[w - offset] == out_shape[w],
        )
        spans.append((tag, axes, full))
    lead = spans[0]
    for p in spans:
        if p[2][0] and p[2][1]:
            lead = p
            break
    rf, where = [], lead[1]
    for i in (0, 1):
        size, best = 0, None  # the largest field; the first largest of those spanning
        for tag, axes, full in spans:
            r = tag.rf[i]
            size = r.size if r.size > size else size
            if full[i] and axes[i] == where[i] and (best is None or r.size > best.size):
                best = r
        r = lead[0].rf[i] if best is None else best
        rf.append(r if r.size == size else Field(size, r.jump, r.start))
    return tuple(rf), lead[1], lead[0]


def _spanning(tagged: list, out_shape, out_dim: int, align: bool) -> tuple | None:
    """`combine` of inputs that all span the output on the first one's axes, both spatial (a
    residual sum, a concatenation of channels: most joins): per axis the first largest
    field, which the general rule finds for them too; None for any other inputs. (GhostNet's
    and ShuffleNet's cats, LeViT's sums: 2.0 -> 1.0 µs.)"""
    first = tagged[0][1]
    axes = first.axes
    h, w = axes
    if h is None or w is None:
        return None
    (r0, r1), size0, size1 = first.rf, out_shape[h], out_shape[w]
    for t, tag in tagged:
        if tag.axes != axes or (align and t.dim() != out_dim):
            return None
        shape = t.shape
        if shape[h] != size0 or shape[w] != size1:
            return None
        f0, f1 = tag.rf
        if type(f0) is Blocked or type(f1) is Blocked:  # after an upsampling: their union
            r0, r1 = union(r0, f0), union(r1, f1)
            continue
        r0 = f0 if f0.size > r0.size else r0
        r1 = f1 if f1.size > r1.size else r1
    return (r0, r1), axes, first


def moved(func, args, kwargs, x: Tensor, tag: Tag, out: Tensor, image=None) -> Tag | None:
    """The tag of a permute, split, index or roll output (values moved, not computed; a roll
    needs the (H, W) `image`); None for other calls."""
    if func in C.PERMUTE:
        return _moved(tag, tag.rf, _permuted(func, args, kwargs, x.dim(), tag.axes), tag.chain)
    if func in C.SPLIT:
        ndim = x.dim()
        dim = C.arg(args, kwargs, 2 if func.__name__ in _SPLITS else 1, "dim", 0)
        axes = tag.axes
        if out.dim() < ndim:  # unbind, select
            axes, _ = ax.removed(dim, ndim, axes)
        chain = None if ax._norm(dim, ndim) in tag.axes else tag.chain
        return _moved(tag, tag.rf, axes, chain)
    if func in C.ROLL:
        rf = None if image is None else _rolled(args, kwargs, x, tag, image)
        return None if rf is None else _moved(tag, rf, tag.axes, tag.chain)
    if func in C.GETITEM:
        found = ax.index(args[1], x.shape, tag.axes)
        if found is None:
            return None
        axes, steps = found
        rf, chain = tag.rf, tag.chain
        if steps != (1, 1) and rf is not None:
            rf = tuple(Field(r.size, r.jump * s, r.start) for r, s in zip(rf, steps, strict=True))
        if _lengths_at(out.shape, axes) != _lengths_at(x.shape, tag.axes):
            chain = None  # a crop: the size no longer follows the windows
        return _moved(tag, rf, axes, chain)
    return None


_SPLITS = ("chunk", "split", "tensor_split", "split_with_sizes")  # their dim comes third


def _moved(tag: Tag, rf, axes: ax.Axes, chain) -> Tag:
    """`tag` of values moved to `axes`, with field `rf` and `chain`: no F.pad zeros around the
    map nor conv/linear layer reached through linear ops only (`linear`) any more, the other
    facts kept. (Made whole: replaced(tag, ...) of four fields costs 0.85 µs, this 0.3.)"""
    return record(
        Tag, (rf, axes, chain, tag.lost, None, tag.squashed_by, tag.flat, None, tag.last_pool)
    )


def _lengths_at(shape, axes: ax.Axes) -> tuple:
    """The lengths of a tensor's height and width axes (None where merged or reduced)."""
    h, w = axes
    return None if h is None else shape[h], None if w is None else shape[w]


def _rolled(args: tuple, kwargs: dict, x: Tensor, tag: Tag, image) -> tuple[Field, Field] | None:
    """torch.roll(x, shifts, dims): along a spatial axis it shifts, the map's two ends meet
    at a seam, and a window after it reads both (Swin's shifted windows; autograd's extent
    is the whole map): each field spans all n units', rf + (n − 1)·jump (at most rf plus the
    image), an upper bound for the rolled map itself; one that spans the image already stays
    (the seam adds nothing). None where it rolls the flattened map or merged axes (tokens)."""
    shifts, dims = C.arg(args, kwargs, 1, "shifts"), C.arg(args, kwargs, 2, "dims")
    if dims is None or dims == ():
        return None
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims)
    moved_dims = {ax._norm(d, x.dim()) for d, s in zip(dims, shifts, strict=True) if s % x.shape[d]}
    rf = list(tag.rf)
    for i, a in enumerate(tag.axes):
        if a in moved_dims and rf[i].size < image[i]:
            if tag.axes[0] == tag.axes[1]:
                return None
            span = min((x.shape[a] - 1) * rf[i].jump, image[i])  # (windows blur spacings)
            rf[i] = Field(rf[i].size + span, rf[i].jump, rf[i].start)
    return rf[0], rf[1]


def _permuted(func, args, kwargs, ndim: int, axes: ax.Axes) -> ax.Axes:
    if len(args) == 3 and func in _TRANSPOSE:  # x.transpose(1, 2): most of a token net's
        return ax.swap(args[1], args[2], ndim, axes)
    name = func.__name__
    if name == "permute":
        order = args[1:] if len(args) > 2 else C.arg(args, kwargs, 1, "dims")
        return ax.permute(list(order), axes)
    if name in ("movedim", "moveaxis"):
        return ax.movedim(C.arg(args, kwargs, 1, "source"), C.arg(args, kwargs, 2, "destination"),
                          ndim, axes)  # fmt: skip
    if name in ("t", "T") or ndim < 2:
        return ax.swap(0, 1, ndim, axes) if ndim == 2 else axes
    if name == "mT":
        return ax.swap(-2, -1, ndim, axes)
    return ax.swap(C.arg(args, kwargs, 1, "dim0"), C.arg(args, kwargs, 2, "dim1"), ndim, axes)


_TRANSPOSE = C.both("transpose", "swapaxes", "swapdims")  # (x, dim0, dim1)


def activation(func, args, kwargs=None):
    try:
        return activation_of_call(func, args, kwargs)
    except (TypeError, IndexError):
        return None


def one_input_rule(func, args=(), kwargs=None) -> tuple[bool, bool]:
    """(saturating, keep) of a one-input element-wise call, for `Roles._one_input`."""
    act = activation(func, args, kwargs)
    return act is not None and act.saturates is not None, (
        func in LINEAR_PATH or func in C.COLLAPSIBLE
    )


# the rules of the calls whose activation is theirs whatever the arguments (not hardtanh's)
RULES = {f: one_input_rule(f) for f in ELEMENTWISE if getattr(activation(f, ()), "name", "")
          != "hardtanh"}  # fmt: skip


# torch's BatchNorm classes and the input dims each takes (as its _check_input_dim)
BATCH_NORM_DIMS = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}


_DROPOUTS = (nn.Dropout, nn.Dropout2d, nn.Dropout3d)  # (Dropout1d: torch judges its dims)


def same_shape_call(module: nn.Module) -> Callable | None:
    """The call a shape-keeping module of exactly this type makes (its forward is torch's,
    not overridden): BatchNorm1d/2d/3d, dropout, the activations of the table."""
    kind = type(module)
    if kind in BATCH_NORM_DIMS:
        return torch.nn.functional.batch_norm
    if kind in _DROPOUTS:
        return torch.nn.functional.dropout
    act = activation_of(module)
    if act is not None and kind in act.modules and kind is not nn.PReLU:
        return act.functions[0]
    return None


def first_tensor(output: Any) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return next((t for t in map(first_tensor, output) if t is not None), None)
    if hasattr(output, "to_tuple"):  # Hugging Face's ModelOutput
        return first_tensor(output.to_tuple())
    return None
