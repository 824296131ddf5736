"""cnnlab.summary's lints (lints.py), each where it must fire and where it must stay silent.
Truths: autograd (pixels no window reads), the notes' formulas, counts by hand in comments.
Each lint is also silent on the architectures of test_summary_families.py."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

import cnnlab
from cnnlab import geometry
from cnnlab.design.summary import Lint, summary
from cnnlab.errors import CnnlabError, SpecError
from test_summary import ResNet, good_net

# --- lints ----------------------------------------------------------------------------------


def codes(model, input_size) -> dict[str, Lint]:
    return {w.code: w for w in summary(model, input_size).warnings}


def test_good_models_have_no_lints():
    assert summary(good_net(), (3, 32, 32)).warnings == []  # a list, as DESIGN.md says
    assert summary(ResNet(), (3, 64, 64)).warnings == []


def test_floor_lint_names_the_edge_and_the_pixels():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    lint = codes(model, (1, 28, 30))["floor"]
    # 28: windows start at 0, 2, ..., 24 and read up to 26: pixel 27 (bottom) is dropped;
    # 30: up to 28, pixel 29 (right) is dropped
    assert lint.layer == "0"
    assert "1 column(s) at the right" in lint.message and "1 row(s) at the bottom" in lint.message
    assert "§2.2" in lint.message
    assert "floor" not in codes(model, (1, 29, 29))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_even_kernel_same_padding_lint():
    model = nn.Sequential(nn.Conv2d(3, 8, 4, padding="same"), nn.ReLU())
    lint = codes(model, (3, 16, 16))["even-kernel-same"]
    assert lint.layer == "0" and "1 before and 2 after" in lint.message
    assert "even-kernel-same" not in codes(nn.Conv2d(3, 8, 3, padding="same"), (3, 16, 16))


def unread_trailing_pixels(model: nn.Module, input_size) -> tuple[int, int]:
    """(rows at the bottom, columns at the right) of the input whose gradient is zero for
    every output: pixels no window reads, found by autograd (the independent truth)."""
    x = torch.randn(1, *input_size, requires_grad=True)
    model(x).abs().sum().backward()
    read = x.grad.abs().sum(dim=(0, 1)) > 0  # (H, W)
    rows, cols = read.any(dim=1), read.any(dim=0)
    return tuple(int(len(a) - 1 - a.nonzero().max()) for a in (rows, cols))


def test_floor_lint_gives_a_dilated_windows_extent_as_its_k():
    """3×3 at dilation 2 spans 5 pixels: over 8 at stride 2, (8 − 5)/2 is not an integer and
    the last column is unread (5 + 2 = 7 < 8); the message's K is that 5, not the 3."""
    s = summary(nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, dilation=2)), (1, 8, 8))
    (message,) = [w.message for w in s.warnings if w.code == "floor"]
    assert message.startswith("a 3×3 window dilated by 2 (K = 5×5, its extent D(K − 1) + 1)")
    assert "the last 1 column(s) at the right" in message


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(3, 14),
    kernel=st.integers(1, 5),
    strides=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    same=st.booleans(),
)
def test_floor_lint_fires_exactly_where_autograd_sees_unread_pixels(size, kernel, strides, same):
    """Through a spec's conv, 'same' at stride > 1 (zeros padded by F.pad) included: the floor
    lint names as many dropped rows and columns as the input gradient shows, each axis with
    its own stride, except along an axis whose stride passes the kernel (skips by design)."""
    assume(kernel <= size)
    conv = {"filters": 2, "kernel": kernel, "stride": list(strides)}
    conv["padding"] = "same" if same else 0
    spec = {"input": [1, size, size + 1], "layers": [{"conv": conv}]}  # no ReLU: no dead windows
    model = cnnlab.build(spec)
    rows, cols = unread_trailing_pixels(model, (1, size, size + 1))
    rows, cols = (n if s <= kernel else 0 for n, s in zip((rows, cols), strides, strict=True))
    lints = {w.code: w for w in summary(spec).warnings}
    assert ("floor" in lints) == bool(rows or cols)
    if rows:
        assert f"(stride {strides[0]}, padding" in lints["floor"].message
        assert f"the last {rows} row(s) at the bottom" in lints["floor"].message
    if cols:
        assert f"(stride {strides[1]}, padding" in lints["floor"].message
        assert f"the last {cols} column(s) at the right" in lints["floor"].message
    even_same = same and kernel % 2 == 0
    assert ("even-kernel-same" in lints) == even_same


@pytest.mark.parametrize(
    "first, between, second, fires",
    [
        # 3→8 3×3 then 8→8 3×3 is one 3→8 5×5 map: 600 weights against the pair's 792
        (nn.Conv2d(3, 8, 3, padding=1), [nn.BatchNorm2d(8)], nn.Conv2d(8, 8, 3, padding=1), True),
        (nn.Conv2d(8, 32, 1), [nn.Dropout(0.1), nn.AvgPool2d(2)], nn.Conv2d(32, 8, 1), True),
        (nn.Conv2d(3, 8, 3, padding=1), [nn.ReLU()], nn.Conv2d(8, 8, 3, padding=1), False),
        (nn.Conv2d(8, 32, 1), [nn.MaxPool2d(2)], nn.Conv2d(32, 8, 1), False),  # not linear
        # with a 2×2 average pool between, one map needs an 8×8 kernel: more weights
        (nn.Conv2d(3, 8, 3, padding=1), [nn.AvgPool2d(2)], nn.Conv2d(8, 8, 3, padding=1), False),
        # depthwise → pointwise: a grouping the one map would lose
        (nn.Conv2d(8, 8, 3, padding=1, groups=8), [nn.BatchNorm2d(8)], nn.Conv2d(8, 16, 1), False),
        # a linear bottleneck: 32 → 4 → 32 has rank 4, which one 32 → 32 map would lose
        (nn.Conv2d(32, 4, 1), [nn.BatchNorm2d(4)], nn.Conv2d(4, 32, 1), False),
    ],
)
def test_linear_collapse_lint(first, between, second, fires):
    """Fires only where one linear map replaces the pair with no more weights and no
    grouping or rank constraint lost (counted here by hand in the comments)."""
    model = nn.Sequential(first, *between, second)
    lint = codes(model, (first.in_channels, 16, 16)).get("linear-collapse")
    assert (lint is not None) == fires
    if fires:
        assert lint.layer == str(len(between) + 1) and "§4.1" in lint.message


def test_linear_collapse_in_a_dense_head():
    head = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Dropout(), nn.Linear(8, 3))
    assert codes(head, (3, 2, 2))["linear-collapse"].layer == "3"


def test_flatten_head_lints_and_gap_frees_them():
    flat = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 14 * 14, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
    found = codes(flat, (1, 28, 28))
    assert found["flatten-explosion"].layer == "4" and "99.7%" in found["flatten-explosion"].message
    assert found["fixed-size"].layer == "3" and "28×28" in found["fixed-size"].message
    assert not {"flatten-explosion", "fixed-size"} & set(codes(good_net(), (3, 32, 32)))


def test_rf_small_lint():
    small = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    lint = codes(small, (3, 64, 64))["rf-small"]
    assert "3 px" in lint.message and "64-px" in lint.message


def test_saturating_lint_only_in_deep_nets():
    def net(act, depth):
        layers = []
        for _ in range(depth):
            layers += [nn.Conv2d(4, 4, 3, padding=1), act()]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

    assert "saturating" in codes(net(nn.Tanh, 6), (4, 8, 8))
    assert "saturating" in codes(net(nn.Sigmoid, 6), (4, 8, 8))
    assert "saturating" not in codes(net(nn.ReLU, 6), (4, 8, 8))
    assert "saturating" not in codes(net(nn.Tanh, 2), (4, 8, 8))


def test_output_below_one_pixel_names_the_layer():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2), nn.Conv2d(4, 4, 5))
    with pytest.raises(SpecError, match=r"layer 2 \(Conv2d\).*3×3"):
        summary(model, (3, 8, 8))


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 40),
    k=st.integers(1, 11),
    before=st.integers(0, 11),
    after=st.integers(0, 11),
)
def test_no_pixel_is_dropped_at_stride_1_without_dilation(size, k, before, after):
    """The floor lint skips stride-1, undilated windows (every pixel starts a window):
    geometry.dropped_pixels, the notes' count, agrees on all of them."""
    assume(k <= size + before + after)
    assert geometry.dropped_pixels(size, k, (before, after), 1, 1) == 0


class Slice(nn.Module):
    """A layer whose own code may empty the map: the first n along a dim (x.narrow)."""

    def __init__(self, dim: int, n: int) -> None:
        super().__init__()
        self.dim, self.n = dim, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.narrow(self.dim, 0, self.n)


def first_empty(model: nn.Sequential, input_size) -> str | None:
    """The first child whose output torch's real forward makes empty (the truth), or None."""
    x = torch.zeros(1, *input_size)
    for name, child in model.named_children():
        x = child(x)
        if x.numel() == 0:
            return name
    return None


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(0, 2),
    width=st.integers(0, 2),
    kept=st.integers(0, 2),
    features=st.integers(0, 2),
    rows=st.integers(0, 2),
)
def test_empty_output_lint_names_the_first_layer_torch_gives_no_values(
    height, width, kept, features, rows
):
    """Torch runs an adaptive pool to 0, a slice to 0 channels or rows and a linear to 0
    features; the lint names the first layer whose real output is empty, and is silent
    where none is."""
    model = nn.Sequential(
        nn.Conv2d(2, 2, 3), Slice(1, kept), nn.ReLU(), Slice(2, rows),
        nn.AdaptiveAvgPool2d((height, width)),
        nn.Flatten(), nn.Linear(kept * height * width, features), nn.ReLU(),
    )  # fmt: skip
    truth = first_empty(model, (2, 6, 6))
    found = codes(model, (2, 6, 6)).get("empty-output")
    assert (found and found.layer) == truth
    if found:
        assert f"layer {truth} ({type(model[int(truth)]).__name__}) outputs " in found.message


def test_empty_output_lint_says_what_is_zero():
    pool = codes(nn.Sequential(nn.Conv2d(1, 3, 3), nn.AdaptiveAvgPool2d((0, 3))), (1, 8, 8))
    assert "outputs 3×0×3" in pool["empty-output"].message
    assert "output size along the height is 0" in pool["empty-output"].message
    cut = codes(nn.Sequential(Slice(1, 0), nn.ReLU()), (1, 8, 8))["empty-output"]
    assert cut.layer == "0" and "outputs 0×8×8" in cut.message and "(channels 0)" in cut.message
    assert "1 later row(s) are empty too" in cut.message
    assert "out_channels" not in cut.message  # a slice has none to set
    dense = codes(nn.Sequential(nn.Flatten(), nn.Linear(4, 0)), (1, 2, 2))["empty-output"]
    assert dense.layer == "1" and "0 features (a Linear's out_features=0" in dense.message


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_a_conv_of_no_channels_is_refused_not_linted():
    """torch's CPU forward refuses nn.Conv2d(1, 0, 3), so no lint can tell the user to give
    a conv more channels: the summary refuses it with torch's error."""
    model = nn.Sequential(nn.Conv2d(1, 0, 3), nn.ReLU())
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 1, 8, 8))  # the truth
    with pytest.raises(CnnlabError, match="expected weight to be at least 1"):
        summary(model, (1, 8, 8))


class _Shared(nn.Module):
    """conv a → BN → conv b, where a's output is also read by `use`: a residual sum around
    b (LeViT's attention projection, then the MLP's first linear inside a residual), a
    second conv reading it (q and k of one input), or none (the plain chain)."""

    def __init__(self, use: str) -> None:
        super().__init__()
        self.use = use
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.a(x))
        y = self.b(h)
        if self.use == "residual":
            return torch.relu(h + torch.relu(y))
        if self.use == "second conv":
            return torch.relu(y) * torch.relu(self.c(h))
        if self.use == "shape only":  # reading its size is no second use
            assert h.size(1) == 8 and h.dim() == 4
        return torch.relu(y)


@pytest.mark.parametrize(
    ("use", "fires"),
    [("none", True), ("shape only", True), ("residual", False), ("second conv", False)],
)
def test_linear_collapse_only_where_the_first_output_has_no_other_reader(use, fires):
    """W_b(W_a x) is one map only if nothing else reads W_a x: with a residual sum around b
    (or a second layer reading it) conv a must stay, and the pair is no redundancy."""
    lint = codes(_Shared(use).eval(), (3, 8, 8)).get("linear-collapse")
    assert (lint is not None) == fires
    if fires:
        assert lint.layer == "b"


class _PassThrough(nn.Module):
    """Two linears with a call between that reads the first's output without a new value:
    `.to()` of its own dtype and `.contiguous()` return it, `isfinite` only tests it."""

    def __init__(self, op):
        super().__init__()
        self.a, self.b, self.op = nn.Linear(12, 8), nn.Linear(8, 8), op

    def forward(self, x):
        h = self.a(x.flatten(1))
        return self.b(self.op(h))


@pytest.mark.parametrize(
    "op",
    [
        lambda h: h.to(torch.float32),
        lambda h: h.contiguous(),
        lambda h: h if torch.isfinite(h).all() else h.nan_to_num(),
    ],
)
def test_linear_collapse_through_a_call_that_returns_its_input_or_tests_it(op):
    # each counted as a second reader of a's output, which kept a: the lint was silent
    assert codes(_PassThrough(op), (3, 2, 2))["linear-collapse"].layer == "b"
