"""The tag rules by role (conv/pool window, linear, pad, adaptive pool, reshape, join,
reduce, element-wise): what a call's output tag is, given its inputs' tags, and the facts
(`facts.py`) each role notes on the way. A mixin of `trace.Tracer`, which keeps the facts'
lists and knows the running layer (`self.layer`, `self.image`, `self.windows`, ...)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from cnnlab.design.summary import axes as ax
from cnnlab.design.summary import calls as C
from cnnlab.design.summary import picks as K
from cnnlab.design.summary import products as P
from cnnlab.design.summary.facts import (
    SIZE_FREE,
    DenseFact,
    Field,
    HeadFact,
    LostFact,
    SquashFact,
    WeightFact,
    Window,
    WindowFact,
    record,
)
from cnnlab.design.summary.pads import spatial_pad, zero_pad
from cnnlab.design.summary.tags import (
    ELEMENTWISE,
    LINEAR_PATH,
    RULES,
    TAG,
    USED,
    Tag,
    activation,
    all_lost,
    blocks,
    cleared,
    combine,
    global_rf,
    moved,
    one_input_rule,
    replaced,
    sees_all,
    tiled,
    unpadded,
)


class Roles:
    """Tag rules of the tracer, one method per role."""

    def _use(self, t: Tensor, tag: Tag) -> None:
        """A call reads `t`, on the path after a conv/linear layer through linear ops only
        (tag.linear set): the second call to read it makes that layer's output shared
        (`shared`). Folding the layer into the next one (linear-collapse, §4.1) needs its
        output read by that one alone: LeViT's attention projection feeds both the MLP's
        first linear and the residual sum around the MLP."""
        if getattr(t, USED, False):
            self.shared.add(tag.linear[0])
        else:
            setattr(t, USED, True)

    def _tag(self, func, args, kwargs, out: Tensor, tagged: list, w: Window | None) -> Tag | None:
        """The tag of `out`, one of func's outputs, from its tagged inputs (None: it read
        none of their values)."""
        src, tag = tagged[0]
        if w is not None:
            return self._window_tag(func, args, kwargs, src, tag, w)
        if func in C.LINEAR:
            return self._linear_tag(args, kwargs, src, tag, out)
        if tag.rf is None and all_lost(tagged):  # lost stays lost, named once
            return self._still_lost(func, tag, len(tagged))
        if func in ELEMENTWISE:  # (past the roles below, none of which it has: 0.4 µs)
            return self._elementwise(func, args, tagged, out, kwargs)
        if func in C.PAD:
            return self._pad_tag(args, kwargs, src, tag)
        if func in C.ADAPTIVE:
            return self._adaptive_tag(func, src, tag, out)
        if func in C.RESHAPE:
            return self._reshape_tag(src, tag, out)
        new = moved(func, args, kwargs, src, tag, out, self.image) if func in _MOVES else None
        if new is not None:
            return self._keep_facts(func, tag, new)
        if func in C.JOIN or func in C.STACK:
            return self._join_tag(func, args, kwargs, tagged, out)
        if func in C.REDUCE:
            return self._reduce_tag(func, args, kwargs, src, tag, out)
        if func in C.SAME or func in C.NORM_LIKE or C.pointwise(func) or activation(func, args):
            return self._elementwise(func, args, tagged, out, kwargs)
        if func in P.ROLES:
            new = self._product_tag(func, args, kwargs, tagged, out)
            if new is not None:
                return new
        if func in K.ROLES and tag.rf is not None:
            new = K.picked(func, args, kwargs, src, tag, out, self._lengths(src, tag), self.image)
            if new is not None:
                return self._keep_facts(func, tag, new)
        if func in C.LIKE:  # zeros_like(x): x's shape, no value; untagged (`Tracer._row`)
            return None
        if func in C.GRIDS and tag.rf is not None:  # each point from all of theta's
            return Tag(tag.rf, (None, None), None)
        if func in C.BILINEAR and not any(t.dim() - 1 in g.axes for t, g in tagged):
            return self._elementwise(func, args, tagged, out, kwargs)  # per row, as F.linear
        name = call_name(func)
        self.lost.setdefault((name, self.layer), LostFact(name, self.layer))
        return Tag(None, (None, None), None, lost=name)

    # the roles ------------------------------------------------------------------------------
    def _keep_facts(self, func, tag: Tag, new: Tag) -> Tag:
        """new, with the lint facts of `tag` kept where func is linear in its input."""
        if func in LINEAR_PATH:
            return new
        return cleared(new, pad=False)

    def _window_tag(self, func, args, kwargs, x: Tensor, tag: Tag, w: Window) -> Tag:
        """A conv or pool: the field grows, the chain gets the window, the facts are noted."""
        # the tag read once (ten reads of its fields: 0.3 µs)
        field, axes, chain, lost, linear, squashed, flat, zeros, last_pool = tag
        layer, shape = self.layer, x.shape
        n = len(shape)
        size = (shape[-2], shape[-1]) if n > 1 else tuple(shape[-2:])
        pad = zeros if zeros is not None and w.padding == (0, 0) else None
        if pad is not None:  # the real map inside F.pad's zeros
            size = (size[0] - pad[0] - pad[1], size[1] - pad[2] - pad[3])
        self.windows.append(record(WindowFact, (layer, w, size, pad)))
        on_map = axes == (n - 2, n - 1)
        rf = None
        if on_map and isinstance(chain, tuple):
            chain = (w, chain)
        if field is not None and not on_map and n > 2:
            rf, chain = self._off_map(func, args, kwargs, x, tag, w), None
        elif field is not None and (on_map or _pointwise(w)):
            rf = C.window_rf(field, w)
        if w.ceil_mode and on_map and all(C.covers(shape[-2 + i], w, i) for i in (0, 1)):
            rf = self._global(x, tag) if field is not None else None  # a global pool
            chain = SIZE_FREE
        if rf is None and field is not None:
            return self._lose(func, tag)
        if func in C.CONV:
            if len(args) == 7:  # as nn.Conv2d calls it
                weight, bias, groups = args[1], args[2], args[6]
            else:
                weight, bias = C.arg(args, kwargs, 1, "weight"), C.arg(args, kwargs, 2, "bias")
                groups = C.arg(args, kwargs, 6, "groups", 1)
            linear = (self._weight("conv", weight, bias, groups, tag, w, layer), ())
            pool = last_pool if _keeps_size(w) else None  # else the conv sets the size
            return record(Tag, (rf, axes, chain, lost, linear, None, None, None, pool))
        if func in C.AVG_POOL:
            linear = None if linear is None else (linear[0], (*linear[1], w))
        else:
            linear = squashed = flat = None
        return record(Tag, (rf, axes, chain, lost, linear, squashed, flat, None, (layer, w)))

    def _off_map(self, func, args, kwargs, x: Tensor, tag: Tag, w: Window) -> tuple:
        """The fields after a conv or pool whose two axes are not the map's (triplet
        attention's 7×7 conv over (C, W) of a (B, H, C, W) permute): per axis as `picks.slid`
        says, a conv mixing dim n − 3 (its channels) unless it is depthwise."""
        n = x.dim()
        steps = {n - 2 + i: (w.kernel[i], w.stride[i], w.padding[i], w.dilation[i]) for i in (0, 1)}
        mixes = func in C.CONV and C.arg(args, kwargs, 1, "weight").shape[1] > 1
        mixed = n - 3 if mixes else None
        return K.slid(tag, x.shape, steps, mixed, self._lengths(x, tag), self.image)

    def _weight(
        self, kind: str, weight: Tensor, bias, groups: int, tag: Tag, w: Window | None, layer: str
    ) -> int:
        """Records a conv or linear call (WeightFact) of `layer`; returns its index."""
        shape = weight.shape
        out, in_ = shape[0], shape[1] * groups
        if w is None:
            kernel = stride = (1, 1)
        elif w.dilation == (1, 1):
            kernel, stride = w.kernel, w.stride
        else:
            (k0, k1), (d0, d1) = w.kernel, w.dilation
            kernel, stride = (d0 * (k0 - 1) + 1, d1 * (k1 - 1) + 1), w.stride
        before, pools = tag.linear if tag.linear is not None else (None, ())
        bias_n = 0 if bias is None else bias.numel()
        fact = (layer, kind, in_, out, kernel, stride, groups, weight.numel(), bias_n, before,
                pools)  # fmt: skip
        self.weights.append(record(WeightFact, fact))
        if tag.squashed_by is not None:
            self.squashes.append(SquashFact(tag.squashed_by, layer))
        return len(self.weights) - 1

    def _linear_tag(self, args, kwargs, x: Tensor, tag: Tag, out: Tensor) -> Tag:
        """F.linear mixes the last axis: along a spatial axis the field becomes the whole
        axis; on channels (channels-last maps, vectors) it stays."""
        weight, bias = C.arg(args, kwargs, 1, "weight"), C.arg(args, kwargs, 2, "bias")
        index = self._weight("linear", weight, bias, 1, tag, None, self.layer)
        if tag.flat is not None and self.dense is None:
            n = sum(C.arg(args, kwargs, i, k).numel() for i, k in ((1, "weight"), (2, "bias"))
                    if C.arg(args, kwargs, i, k) is not None)  # fmt: skip
            layer, shape, chain, pool = tag.flat
            self.dense = DenseFact(self.layer, layer, shape, chain, n, pool)
        rf, last = tag.rf, x.dim() - 1
        if last in tag.axes and rf is not None:
            n = self._lengths(x, tag)
            rf = tuple(
                global_rf(r, n[i], self.image[i]) if a == last else r
                for i, (a, r) in enumerate(zip(tag.axes, rf, strict=True))
            )
        linear, pool = (index, ()), tag.last_pool  # (made whole: Tag() costs 0.4 µs more)
        return record(Tag, (rf, tag.axes, tag.chain, tag.lost, linear, None, None, None, pool))

    def _pad_tag(self, args, kwargs, x: Tensor, tag: Tag) -> Tag:
        """F.pad on the map, in any mode: pixel 0 of the output is pixel -top (-left) of the
        input, so start' = start − P · jump (size and jump stay). The field counts positions
        (§3.2): a reflect, replicate or circular pad fills them from inside the map, but adds
        them before it as zeros do. Only zeros are noted as `pad` (the floor and even-kernel
        lints' real map inside zeros); a crop (a negative pad) leaves the chain."""
        pad = spatial_pad(args, kwargs)
        if pad is None or tag.axes != (x.dim() - 2, x.dim() - 1):
            return self._keep_facts(next(iter(C.PAD)), tag, replaced(tag, chain=None))
        (h, w), (top, bottom, left, right) = tag.rf, pad
        rf = (
            record(Field, (h.size, h.jump, h.start - top * h.jump)),
            record(Field, (w.size, w.jump, w.start - left * w.jump)),
        )  # (0.8 µs less than Field() in a generator, 0.5 less than Window(..., after=))
        chain = tag.chain
        if isinstance(chain, tuple):
            w = record(Window, ((1, 1), (1, 1), (top, left), (1, 1), False, False, (bottom, right)))
            chain = (w, chain) if min(pad) >= 0 else None
        return replaced(tag, rf=rf, chain=chain, pad=zero_pad(pad, args, kwargs))

    def _adaptive_tag(self, func, x: Tensor, tag: Tag, out: Tensor) -> Tag:
        """Adaptive pooling: a plain pool with k = s = in/out where the output divides the
        input, else (and to 1×1) each unit sees the whole map. The size no longer follows
        the input's. An output size of 0 (torch makes an empty map) divides nothing, nor
        does an empty input (a window of 0 would have a stride of 0)."""
        in_map, out_map = tuple(x.shape[-2:]), tuple(out.shape[-2:])
        (i0, i1), (o0, o1) = in_map, out_map  # (no generators: SE gates pool 16 times)
        linear = None
        if o0 and i0 and i0 % o0 == 0 and o1 and i1 and i1 % o1 == 0 and out_map != (1, 1):
            k = (i0 // o0, i1 // o1)
            w = record(Window, (k, k, (0, 0), (1, 1), False, False, None))
            rf = C.window_rf(tag.rf, w)
        else:  # as a pool over the whole map
            w = record(Window, (in_map, in_map, (0, 0), (1, 1), False, False, None))
            rf = self._global(x, tag)
        if func in C.ADAPTIVE_AVG and tag.linear is not None:
            linear = (tag.linear[0], (*tag.linear[1], w))
        squashed = tag.squashed_by if func in C.ADAPTIVE_AVG else None
        return record(Tag, (rf, tag.axes, SIZE_FREE, None, linear, squashed, None, None, None))

    def _lengths(self, x: Tensor, tag: Tag) -> tuple[int, int]:
        """The map's height and width in x (merged into one axis: from the image and the
        units' spacing)."""
        h, w = tag.axes
        if h is not None and w is not None and h != w:
            return x.shape[h], x.shape[w]
        (n0, n1), (r0, r1) = self.image, tag.rf  # (no generator: 0.8 -> 0.3 µs, a matmul 2)
        return -(-n0 // r0.jump), -(-n1 // r1.jump)

    def _global(self, x: Tensor, tag: Tag, head: bool = True, flatten: bool = False) -> tuple:
        """Each unit sees the whole map: the head of the net (§3.2; a flatten's, or a pool's),
        unless `head` is False (a reshape into windows, whose map no head reads)."""
        in_map = self._lengths(x, tag)
        if in_map != (1, 1) and head:
            self.heads.append(HeadFact(self.layer, tag.rf, tuple(x.shape[1:]), flatten))
        (r0, r1), (n0, n1), (e0, e1) = tag.rf, in_map, self.image  # (no generator: 0.5 µs)
        return global_rf(r0, n0, e0), global_rf(r1, n1, e1)

    def _reshape_tag(self, x: Tensor, tag: Tag, out: Tensor) -> Tag:
        """view/reshape/flatten: an axis kept by position keeps its field; one cut in two
        (H -> (H/k, k): einops' pooling, Swin's windows) is blocks of k (`tags.blocks`), no
        head; axes merged into one see the whole map (flatten, §5.2: the dense head's
        input; only a (batch, features) output is a head), as does a block merged back or
        into the batch (an overstatement until an attention over the windows or patches)."""
        axes = ax.reshape(x.shape, out.shape, tag.axes)
        if None in axes and axes != tag.axes and out.dim() > x.dim():  # cut in two: blocks
            axes, tag = blocks(x.shape, out.shape, axes, tag)
        flat = tag.flat
        if None in axes and axes != tag.axes:  # a spatial axis merged away
            # merged: gone now, not before (the width of (B, C, H, W) -> (B, C·H, W) only moves)
            merged = [i for i in (0, 1) if axes[i] is None and tag.axes[i] is not None]
            if len(merged) == 2:
                raw = all(r.size == 1 for r in tag.rf)  # the image itself: an MLP
                rf = self._global(x, tag, head=out.dim() == 2, flatten=True)
                shape = tuple(x.shape[1:])
                head = not raw and out.dim() == 2
                flat = (self.layer, shape, tag.chain, tag.last_pool) if head else None
            else:
                n = self._lengths(x, tag)
                rf = tuple(
                    global_rf(r, n[i], self.image[i]) if i in merged else r
                    for i, r in enumerate(tag.rf)
                )
            linear = tag.linear if tag.axes == (None, None) else None
            return replaced(tag, rf=rf, axes=axes, flat=flat, linear=linear, pad=None)
        if x.dim() == 2 and tag.axes == (None, None) and out.dim() == 4:
            # features made into a map (a decoder's Linear, then .view(B, C, h, w))
            if sees_all(tag.rf, self.image):
                rf = tuple(map(tiled, tag.rf, self.image, out.shape[-2:]))
                return replaced(tag, rf=rf, axes=(2, 3), flat=None, linear=None, pad=None)
        if tag.pad is None:  # replaced(tag, axes=axes, pad=None), written out (0.3 µs less)
            return tag if axes == tag.axes else record(Tag, (tag.rf, axes, *tag[2:]))
        return replaced(tag, axes=axes, pad=None)

    def _join_tag(self, func, args, kwargs, tagged: list, out: Tensor) -> Tag:
        """cat/stack: the largest field of the inputs; stack adds a dimension."""
        tag = self._elementwise(func, args, tagged, out, kwargs, align=False)
        if func in C.STACK:
            dim = C.arg(args, kwargs, 1, "dim", 0)
            tag = replaced(tag, axes=ax.inserted(dim, out.dim(), tagged[0][1].axes))
        return tag

    def _reduce_tag(self, func, args, kwargs, x: Tensor, tag: Tag, out: Tensor) -> Tag:
        """mean/sum/max/softmax/norm over dims: along a spatial one, each value sees it all.
        A softmax keeps the positions (each value its own, normalised: attention weights):
        no head, where the map becomes a vector."""
        dims = ax.reduced_dims(C.arg(args, kwargs, P.reduce_dim_at(func), "dim"), x.dim())
        rf, axes = list(tag.rf), tag.axes
        spatial = [i for i in (0, 1) if axes[i] in dims]  # (a softmax of attention: 14 a LeViT)
        if len(spatial) == 2:
            rf = list(self._global(x, tag, func not in _SOFTMAX))
        elif spatial:
            i = spatial[0]
            rf[i] = global_rf(rf[i], self._lengths(x, tag)[i], self.image[i])
        if func in C.REDUCES_SHAPE and out.dim() < x.dim():
            for ndim, d in enumerate(reversed(dims)):  # highest first: lower ones stay put
                axes, _ = ax.removed(d, x.dim() - ndim, axes)
        chain = SIZE_FREE if spatial else tag.chain
        new = replaced(tag, rf=tuple(rf), axes=axes, chain=chain, pad=None)
        return self._keep_facts(func, tag, new if spatial else replaced(new, linear=None))

    def _product_tag(self, func, args, kwargs, tagged: list, out: Tensor) -> Tag | None:
        """The calls of `products.py`; None where the trace does not follow them."""
        src, tag = tagged[0]
        if func in P.MATMUL:  # (first: a token net's most frequent of them)
            found = P.operands(func, args, kwargs, out)
            return None if found is None else self._summed(found)
        if func in P.NORMS:
            return self._reduce_tag(func, args, kwargs, src, tag, out)
        if P.pools_all(func, out):  # (B, C, L) -> (B, C, 1): a reduction over the last axis
            return self._reduce_tag(func, (src, -1), {}, src, tag, out)
        if func in P.BLOCKS:  # each column or position gets its window's field: an upper bound
            # for its values, each one pixel until something mixes them (a conv, a matmul)
            if src.dim() != 4 or tag.axes != (2, 3):
                return None
            w = P.block_window(func, args, kwargs)
            chain = (w, tag.chain) if isinstance(tag.chain, tuple) else tag.chain
            axes = (2, 2) if func in P.UNFOLD else (2, 3)
            return Tag(C.window_rf(tag.rf, w), axes, chain, last_pool=tag.last_pool)
        if func in P.UPSAMPLED:
            return self._resampled_tag(func, args, kwargs, src, tag, out)
        if func in P.GUMBEL:  # a softmax over dim, -1 by default
            dim = C.arg(args, kwargs, 4, "dim", -1)
            return self._reduce_tag(torch.softmax, (src, dim), {}, src, tag, out)
        found = P.operands(func, args, kwargs, out)
        return None if found is None else self._summed(found)

    def _resampled_tag(self, func, args, kwargs, x: Tensor, tag: Tag, out: Tensor) -> Tag | None:
        """F.fold of (B, C·k·k, L) windows, a transposed conv, max unpooling, a pixel shuffle or
        F.interpolate of a (B, C, H, W) map, up or down: each pixel's field from the units that
        cover it (`products.spread`); the map's size no longer follows the windows' chain."""
        if func in P.FOLD:
            if x.dim() != 3 or tag.axes != (2, 2) or out.dim() != 4:
                return None
            rf = tuple(P.fold_field(r, args, kwargs, i) for i, r in enumerate(tag.rf))
        elif x.dim() != 4 or tag.axes != (2, 3) or out.dim() != 4:
            return None
        elif func in P.BACK:
            rf = tuple(P.window_back(func, r, args, kwargs, i) for i, r in enumerate(tag.rf))
        else:
            rf = tuple(  # (or downsampled)
                P.resampled_field(r, x.shape[2 + i], out.shape[2 + i], args, kwargs, i)
                for i, r in enumerate(tag.rf)
            )
        return None if None in rf else Tag(rf, (2, 3), None, last_pool=tag.last_pool)

    def _summed(self, operands: list) -> Tag | None:
        """A matrix product or attention (`products.operands`: each operand and where its
        dimensions go): along a spatial axis summed over, the operand's field becomes the
        whole map; per axis the largest field of the operands, the axes of the first whose
        positions stay (its spacing of units). Where two operands keep their positions on
        different dims (q @ kᵀ: a query's patch and a key's), the farthest pair spans the
        map: every field is the whole map. A new map: no lint facts pass (§4.1)."""
        lead, fields, wholes, kept, image = None, [], [], set(), self.image
        for t, dims in operands:  # loops, not generators over zips: 15 -> 6 µs a matmul
            tag = getattr(t, TAG, None)
            if tag is None:
                continue
            rf = tag.rf
            if rf is None:
                return None if tag.lost is None else Tag(None, (None, None), None, lost=tag.lost)
            (a0, a1), (r0, r1) = tag.axes, rf
            if a0 is None and a1 is None:  # no spatial axis: its field as it is
                fields.append(rf)
                wholes.append(rf)
                continue
            n = self._lengths(t, tag)
            w0 = r0 if a0 is None else global_rf(r0, n[0], image[0])
            w1 = r1 if a1 is None else global_rf(r1, n[1], image[1])
            k0 = None if a0 is None else dims[a0]
            k1 = None if a1 is None else dims[a1]
            field = (w0 if k0 is None else r0, w1 if k1 is None else r1)
            fields.append(field)
            wholes.append((w0, w1))
            if k0 is not None or k1 is not None:
                kept.add((k0, k1))
                if lead is None:
                    lead = ((k0, k1), field, tag.chain)
        if not fields:  # only an argument besides the operands is traced (a mask)
            return None
        if len(kept) > 1:
            fields = wholes
        axes, base, chain = lead if lead is not None else ((None, None), fields[0], SIZE_FREE)
        size0 = size1 = 0
        for f0, f1 in fields:
            size0, size1 = max(size0, f0.size), max(size1, f1.size)
        b0, b1 = base
        rf = (record(Field, (size0, b0.jump, b0.start)), record(Field, (size1, b1.jump, b1.start)))
        return record(Tag, (rf, axes, chain, None, None, None, None, None, None))

    def _elementwise(self, func, args, tagged: list, out: Tensor, kwargs=None, align=True) -> Tag:
        """Each output value from the inputs' values at its position (broadcast from the
        right): the largest field of the inputs (ties: the first)."""
        if len(tagged) == 1:
            src, tag = tagged[0]
            if align and src.dim() != out.dim():
                tag = replaced(tag, axes=ax.aligned(src.dim(), out.dim(), tag.axes))
            rule = RULES.get(func) or one_input_rule(func, args, kwargs)
            return self._one_input(tag, *rule)
        for _, t in tagged:
            if t.rf is None:
                return self._still_lost(func, t, len(tagged))
        rf, axes, tag = combine(tagged, out, align)
        chain, squashed, flat, pool = tag.chain, None, None, None  # the first of each, if any
        for _, t in reversed(tagged):
            chain = t.chain if isinstance(t.chain, tuple) else chain
            squashed, flat = t.squashed_by or squashed, t.flat or flat
            pool = t.last_pool or pool
        if func not in LINEAR_PATH:
            squashed = flat = None
        # two branches: one linear map cannot replace the pair (§4.1)
        return record(Tag, (rf, axes, chain, None, None, squashed, flat, None, pool))

    def _one_input(self, tag: Tag, saturating: bool, keep: bool) -> Tag:
        """After a one-input element-wise call: a saturating activation is the path's last
        squash (§4.2), a call linear in its input keeps the lint facts, any other clears
        them."""
        if saturating:  # (made whole: replaced() of four fields costs 0.5 µs more)
            rf, axes, chain, lost = tag.rf, tag.axes, tag.chain, tag.lost
            return record(Tag, (rf, axes, chain, lost, None, self.layer, None, None, tag.last_pool))
        return unpadded(tag) if keep else cleared(tag)

    def _still_lost(self, func, tag: Tag, inputs: int) -> Tag:
        """A lost field stays lost, and the lint facts go as on a followed path: through a
        call linear in its input only, and never two branches' (a GELU or a residual sum
        between two linear layers is no collapse, §4.1)."""
        if inputs > 1 or func not in LINEAR_PATH:
            return cleared(tag)
        return unpadded(tag)

    def _lose(self, func, tag: Tag) -> Tag:
        name = call_name(func)
        self.lost.setdefault((name, self.layer), LostFact(name, self.layer))
        return Tag(None, (None, None), None, lost=name)


# the classes torch binds its functions and methods to, and how a model's code names them
_BOUND = {"_VariableFunctionsClass": "torch", "TensorBase": "Tensor"}


def call_name(func: Any) -> str:
    """A call as the model's code writes it: torch.sort, Tensor.sort (their __qualname__ is
    _VariableFunctionsClass.sort, TensorBase.sort), einsum, grid_sample; an operator of
    torch.ops as torch.ops.quantized.linear_dynamic (its __qualname__ names a pybind11
    record)."""
    op = getattr(func, "_qualified_op_name", None)  # "quantized::linear_dynamic"
    if isinstance(op, str):
        return "torch.ops." + op.replace("::", ".")
    name = getattr(func, "__qualname__", None) or repr(func)
    owner, dot, rest = name.partition(".")
    return f"{_BOUND[owner]}.{rest}" if dot and owner in _BOUND else name


_MOVES = C.PERMUTE | C.SPLIT | C.GETITEM | C.ROLL  # the calls `tags.moved` tags
_SOFTMAX = C.REDUCE - C.REDUCES_SHAPE  # softmax, log_softmax: the reductions keeping the shape


def _pointwise(w: Window) -> bool:
    """A 1×1 window of stride 1 without padding: each output from its own position, on
    whichever axes it runs (MobileViTV2's 1×1 convs over (patch pixel, patch) axes)."""
    return w.kernel == w.stride == (1, 1) and w.pads(0) == w.pads(1) == (0, 0)


def _keeps_size(w: Window) -> bool:
    """A window whose output has its input's size whatever that is: stride 1 with padding
    D(K − 1) in all per axis (a 1×1, a 'same' conv)."""
    (s0, s1), (k0, k1), (d0, d1) = w.stride, w.kernel, w.dilation
    if s0 != 1 or s1 != 1:
        return False
    (top, left), (bottom, right) = w.padding, w.padding if w.after is None else w.after
    return top + bottom == d0 * (k0 - 1) and left + right == d1 * (k1 - 1)  # (a conv: 0.2 µs)
