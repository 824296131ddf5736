"""The trace's fast paths give what its general path gives: each `_view` call (a reshape or
permute of one tensor by integer arguments) the output, tag, marks and facts of `_call`, and
whole models the same facts with the fast path as without it, in torch's shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.summary import _trace_module, summary
from cnnlab.design.summary import calls as C
from cnnlab.design.summary import trace as T
from cnnlab.design.summary.facts import Field, Window
from cnnlab.design.summary.tags import INPUT_TAG, PROBABILITIES, ROW, TAG, USED, Tag
from test_summary import leaf_rows, real_leaf_shapes

META = torch.device("meta")
_F = Field(7, 2, 0.5)
_W = Window((3, 3), (2, 2), (1, 1))
TAGS = {
    "input": INPUT_TAG,
    "after-conv": Tag((_F, Field(5, 2, 0.5)), (2, 3), ((_W, ()),), linear=(0, ()), last_pool=None),
    "squashed-flat": Tag((_F, _F), (2, 3), None, squashed_by="act", flat=("f", (4,), (), None)),
    "padded": Tag((_F, _F), (2, 3), (), pad=(1, 1, 1, 1), last_pool=("pool", _W)),
    "lost": Tag(None, (None, None), None, lost="torch.sort", linear=(0, ())),
}
CALLS = [  # (func, integer arguments after the tensor)
    (torch.Tensor.flatten, (2,)),
    (torch.Tensor.flatten, ()),
    (torch.flatten, (1,)),
    (torch.Tensor.view, (1, 4, 36)),
    (torch.Tensor.view, (1, -1)),
    (torch.Tensor.reshape, (1, 4, 6, 6)),
    (torch.Tensor.reshape, (4, 36)),
    (torch.reshape, (torch.Size([1, 2, 2, 36]),)),
    (torch.Tensor.permute, (0, 2, 3, 1)),
    (torch.permute, (torch.Size([0, 3, 1, 2]),)),
    (torch.Tensor.transpose, (1, 2)),
    (torch.transpose, (-1, -2)),
    (torch.Tensor.swapaxes, (2, 3)),
    (torch.Tensor.movedim, (1, -1)),
    (torch.Tensor.unsqueeze, (1,)),
    (torch.Tensor.squeeze, (0,)),
    (torch.squeeze, ()),
]


def _tensor(tag_name: str, layout: str, marks: dict) -> torch.Tensor:
    x = torch.empty(1, 4, 6, 6, device=META)
    if layout == "channels-last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "transposed":  # a reshape of it copies (`rearrange.reshaped`)
        x = torch.empty(1, 4, 6, 6, device=META).transpose(2, 3)
    setattr(x, TAG, TAGS[tag_name])
    for k, v in marks.items():
        setattr(x, k, v)
    return x


def _state(t: torch.Tensor) -> tuple:
    return tuple(getattr(t, k, None) for k in (TAG, ROW, USED, PROBABILITIES))


def _layout(t: torch.Tensor) -> tuple:
    return tuple(t.shape), t.stride(), t.dtype, t.is_meta


MARKS = [{}, {USED: True, ROW: True}, {PROBABILITIES: ("head", "F.softmax", False)}]


@pytest.mark.parametrize("func, more", CALLS, ids=lambda c: getattr(c, "__name__", None))
@pytest.mark.parametrize("tag_name", list(TAGS))
def test_view_fast_path_equals_call(func, more, tag_name):
    """Each (tag, marks, layout) of the input: `_view` and `_call` make an output of one shape
    and strides, the same tag, row, used and probabilities marks on input and output, the
    same lost and shared facts."""
    assert func in T._VIEWS
    for layout in ("contiguous", "channels-last", "transposed"):
        for marks in MARKS:
            done = []
            for path in ("fast", "general"):
                x = _tensor(tag_name, layout, marks)
                tracer = T.Tracer((12, 12))
                tracer.stack.append((None, x, "blk"))
                with torch._C.DisableTorchFunction():
                    try:
                        if path == "fast":
                            out = tracer._view(func, (x, *more))
                        else:
                            out = tracer._call(func, (x, *more), {}, run=True)
                    except RuntimeError as err:  # a view torch refuses: refused alike
                        done.append(("error", str(err)))
                        continue
                    done.append(
                        (
                            _layout(out),
                            _state(out),
                            _state(x),
                            out is x,
                            dict(tracer.lost),
                            set(tracer.shared),
                            tracer.heads,
                        )
                    )
            assert done[0] == done[1], (layout, marks)


def test_views_with_other_arguments_take_the_general_path():
    """A tuple, a list, a dtype, a keyword or a second tensor: `_call`, not `_view`."""
    x = torch.empty(1, 4, 6, 6, device=META)
    assert C.one_tensor((x, 1, -1))
    assert C.one_tensor((x, torch.Size([1, 144])))
    assert not C.one_tensor((x, (1, -1)))
    assert not C.one_tensor((x, [1, -1]))
    assert not C.one_tensor((x, torch.float16))
    assert not C.one_tensor((x, x))
    assert not C.one_tensor((1, x))
    assert torch.Tensor.view_as not in T._VIEWS and torch.Tensor.transpose_ not in T._VIEWS


class Tokens(nn.Module):
    """An attention block of a token net and a head: every view and permute of `calls.VIEWS`,
    probabilities reshaped, a conv's output read through a view twice (a shared layer), a
    flatten head (the dense lints), a lost field reshaped."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.qkv = nn.Linear(16, 48)
        self.proj = nn.Linear(16, 16)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = self.embed(x)  # (B, 16, 8, 8)
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, 64, 16)
        q, k, v = self.qkv(t).view(b, h * w, 3, 4, 4).permute(2, 0, 3, 1, 4).unbind(0)
        a = (q @ k.transpose(-2, -1)).softmax(-1)
        a = a.reshape(b, 4, h * w, h * w)  # probabilities stay so
        y = (a @ v).transpose(1, 2).reshape(b, h * w, c)  # a copying reshape
        y = self.norm(self.proj(y) + t)
        s, _ = torch.sort(y, dim=-1)  # the field is lost
        y = y + s.view(b, h * w, c)
        m = torch.movedim(y, 1, 2).unflatten(2, (h, w)).unsqueeze(2).squeeze(2)
        m = m.swapaxes(2, 3).swapdims(2, 3)
        return self.head(torch.flatten(m, 1))


class Map(nn.Module):
    """A CNN whose head reshapes probabilities (the probabilities-out lint) and whose conv
    output is read twice through views (a shared layer: no collapse)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8 * 16 * 16, 5)

    def forward(self, x):
        y = self.c1(x)
        z = self.c2(y.view(-1, 8, 16, 16)) + y.reshape(-1, 8, 16, 16)
        return F.softmax(self.fc(z.flatten(1)), dim=1).view(-1, 5)


@pytest.mark.parametrize("make, size", [(Tokens, (3, 16, 16)), (Map, (3, 16, 16))])
def test_models_same_facts_with_and_without_the_fast_path(make, size, monkeypatch):
    """The whole trace's facts (rows with fields and MACs, windows, weights, heads, the dense
    head, squashes, lost fields, shared layers, probabilities) and the summary's rows and
    lints equal those without `_view`; the rows' shapes are torch's."""
    model = make().eval()
    fast, fast_summary = _trace_module(model, size), summary(model, size)
    monkeypatch.setattr(T, "_VIEWS", frozenset())
    slow, slow_summary = _trace_module(model, size), summary(model, size)
    assert fast == slow
    assert fast_summary == slow_summary  # rows, totals, lints
    assert leaf_rows(fast_summary, model) == real_leaf_shapes(model, size)


def _summed_by_formula(tracer: T.Tracer, operands: list) -> Tag | None:
    """`Roles._summed`'s rule written out (its docstring): per operand, a spatial axis summed
    over sees the whole map (`tags.global_rf`), one kept keeps its field; two operands
    keeping positions on different dims: every field the whole map; per axis the largest
    size, the spacing and start of the first operand whose positions stay."""
    from cnnlab.design.summary.facts import SIZE_FREE
    from cnnlab.design.summary.tags import global_rf

    lead, fields, wholes, kept = None, [], [], set()
    for t, dims in operands:
        tag = getattr(t, TAG, None)
        if tag is None:
            continue
        if tag.rf is None:
            return None if tag.lost is None else Tag(None, (None, None), None, lost=tag.lost)
        axes = tuple(None if a is None else dims[a] for a in tag.axes)
        n = tracer._lengths(t, tag)
        whole = tuple(
            r if a is None else global_rf(r, n[i], tracer.image[i])
            for i, (a, r) in enumerate(zip(tag.axes, tag.rf, strict=True))
        )
        kept_rf = zip(axes, tag.rf, whole, strict=True)
        fields.append(tuple(w if a is None else r for a, r, w in kept_rf))
        wholes.append(whole)
        if axes != (None, None):
            kept.add(axes)
            lead = lead or (axes, fields[-1], tag.chain)
    if not fields:
        return None
    if len(kept) > 1:
        fields = wholes
    axes, base, chain = lead if lead is not None else ((None, None), fields[0], SIZE_FREE)
    rf = tuple(Field(max(f[i].size for f in fields), base[i].jump, base[i].start) for i in (0, 1))
    return Tag(rf, axes, chain)


_G = Field(3, 4, 1.5)
OPERAND_TAGS = [
    None,
    Tag((_F, _G), (2, None), ((_W, ()),)),  # tokens on dim 2: height kept, width merged
    Tag((_G, _F), (None, 3), None),
    Tag((_F, _G), (2, 2), ()),  # height and width merged into one dim
    Tag((_F, _G), (None, None), ()),  # channels only
    Tag(None, (None, None), None, lost="torch.sort"),
    Tag(None, (None, None), None),
]


@pytest.mark.parametrize("first", range(len(OPERAND_TAGS)))
@pytest.mark.parametrize("second", range(len(OPERAND_TAGS)))
def test_summed_equals_its_formula(first, second):
    """A matmul's operands of every pair of tags (none, kept on height or width, merged,
    channels only, lost, not followed): `_summed` gives the formula's tag."""
    tracer = T.Tracer((12, 12))
    tracer.stack.append((None, None, "attn"))
    a, b = torch.empty(1, 4, 9, 16, device=META), torch.empty(1, 4, 16, 9, device=META)
    for t, i in ((a, first), (b, second)):
        if OPERAND_TAGS[i] is not None:
            setattr(t, TAG, OPERAND_TAGS[i])
    operands = [(a, [0, 1, 2, None]), (b, [0, 1, None, 3])]
    assert tracer._summed(operands) == _summed_by_formula(tracer, operands)
    assert tracer._summed(operands[::-1]) == _summed_by_formula(tracer, operands[::-1])
