"""cnnlab.summary follows the attention and mixing blocks people put into image CNNs, each
written small after its paper and put between two convs: ECA, CBAM, coordinate attention,
selective kernels, triplet attention, SimAM, Res2Net's scales, GLU, gather-excite, a
non-local block; and the calls they are made of, on any axis: F.glu, cumsum / cumprod,
F.gumbel_softmax, 1-D windows (conv1d, avg_pool1d, max_pool1d) along channels, a squeezed
1×1 map or an image axis (a strip conv over the width of a (B·H, C, W) reshape).

Truth: torch's real forward (each row's shape, by forward hooks), no call the trace cannot
follow (no `unfollowed` lint, no row without a field), and autograd: the input pixels the
gradient of one unit reaches, with positive weights (nothing cancels), is the row's field
(clipped to the image: a field that spans it counts the positions around it too, §3.2)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.summary import summary
from test_summary_follow_picks import real_shapes, span
from tiny_nets import outputs

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (4, 16, 16)


# --- the blocks, after their papers -----------------------------------------------------------


class ECA(nn.Module):
    """Efficient channel attention (Wang et al., CVPR 2020): a global average, a 1-D conv
    of k across neighbouring channels, a sigmoid gate on the map."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x):
        y = F.adaptive_avg_pool2d(x, 1)  # (B, C, 1, 1)
        y = self.conv(y.squeeze(-1).transpose(-1, -2))  # (B, 1, C)
        return x * y.transpose(-1, -2).unsqueeze(-1).sigmoid()


class SEConv1d(nn.Module):
    """Squeeze-and-excitation with its two FC layers as 1-D convs of kernel 1 over the
    squeezed (B, C, 1) map."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv1d(c, c // 2, 1), nn.Conv1d(c // 2, c, 1)

    def forward(self, x):
        y = F.adaptive_avg_pool2d(x, 1).squeeze(-1)  # (B, C, 1)
        return x * self.fc2(F.relu(self.fc1(y))).sigmoid().unsqueeze(-1)


class CBAM(nn.Module):
    """Convolutional block attention (Woo et al., ECCV 2018): a channel gate from the
    average and the max pool through one shared MLP, then a spatial gate, a 7×7 conv of the
    mean and max over channels."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(c, c // 2, 1), nn.ReLU(), nn.Conv2d(c // 2, c, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x):
        a = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        x = x * torch.sigmoid(a)
        s = torch.cat([torch.mean(x, 1, keepdim=True), torch.max(x, 1, keepdim=True)[0]], 1)
        return x * torch.sigmoid(self.spatial(s))  # (B, C, H, W)


class CoordAttention(nn.Module):
    """Coordinate attention (Hou et al., CVPR 2021): the map pooled along each axis, (H, 1)
    and (1, W), the two put end to end, a shared 1×1 conv, split back, a gate per axis."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool_h, self.pool_w = nn.AdaptiveAvgPool2d((None, 1)), nn.AdaptiveAvgPool2d((1, None))
        self.conv = nn.Conv2d(c, 2, 1)
        self.act = nn.Hardswish()
        self.conv_h, self.conv_w = nn.Conv2d(2, c, 1), nn.Conv2d(2, c, 1)

    def forward(self, x):
        h, w = x.shape[2:]
        xh, xw = self.pool_h(x), self.pool_w(x).permute(0, 1, 3, 2)  # (B, C, H, 1), (B, C, W, 1)
        y = self.act(self.conv(torch.cat([xh, xw], dim=2)))  # (B, 2, H + W, 1)
        yh, yw = torch.split(y, [h, w], dim=2)
        ah, aw = self.conv_h(yh).sigmoid(), self.conv_w(yw.permute(0, 1, 3, 2)).sigmoid()
        return x * ah * aw


class SelectiveKernel(nn.Module):
    """Selective kernel (Li et al., CVPR 2019): two branches of dilation 1 and 2, their sum
    pooled, a FC, a softmax over the branch axis of the stacked (B, 2, C) weights, the
    branches' weighted sum."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(c, c, 3, padding=1)
        self.b2 = nn.Conv2d(c, c, 3, padding=2, dilation=2)
        self.fc, self.fcs = nn.Linear(c, c // 2), nn.Linear(c // 2, 2 * c)

    def forward(self, x):
        u1, u2 = F.relu(self.b1(x)), F.relu(self.b2(x))
        s = (u1 + u2).mean((2, 3))  # (B, C)
        a = self.fcs(F.relu(self.fc(s))).view(len(x), 2, -1).softmax(dim=1)  # (B, 2, C)
        feats = torch.stack([u1, u2], dim=1)  # (B, 2, C, H, W)
        return (feats * a[..., None, None]).sum(dim=1)


def z_pool(x):
    """The max and the mean over dim 1, side by side: (B, 2, ., .)."""
    return torch.cat([x.max(1, keepdim=True)[0], x.mean(1, keepdim=True)], dim=1)


class TripletAttention(nn.Module):
    """Triplet attention (Misra et al., WACV 2021): three branches, each rotating the map so
    that a different axis is pooled (z-pool) and the other two meet in a 7×7 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.cw, self.hc, self.hw = (nn.Conv2d(2, 1, 7, padding=3) for _ in range(3))

    def forward(self, x):
        xp = x.permute(0, 2, 1, 3)  # (B, H, C, W)
        o1 = (xp * self.cw(z_pool(xp)).sigmoid()).permute(0, 2, 1, 3)
        xp = x.permute(0, 3, 2, 1)  # (B, W, H, C)
        o2 = (xp * self.hc(z_pool(xp)).sigmoid()).permute(0, 3, 2, 1)
        o3 = x * self.hw(z_pool(x)).sigmoid()
        return (o1 + o2 + o3) / 3


class SimAM(nn.Module):
    """SimAM (Yang et al., ICML 2021): each unit's energy from its distance to its channel's
    mean over the map, divided by the channel's variance; a parameter-free gate."""

    def __init__(self, lam: float = 1e-4) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, x):
        d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        e = d / (4 * (x.var(dim=(2, 3), keepdim=True) + self.lam)) + 0.5
        return x * torch.sigmoid(e)


class Res2Net(nn.Module):
    """Res2Net's scales (Gao et al., TPAMI 2019): the channels split into s groups, each
    3×3 conv fed its group plus the previous conv's output, all put back together."""

    def __init__(self, c: int, scales: int = 4) -> None:
        super().__init__()
        self.width = c // scales
        self.convs = nn.ModuleList(
            nn.Conv2d(self.width, self.width, 3, padding=1) for _ in range(scales - 1)
        )
        self.fuse = nn.Conv2d(c, c, 1)

    def forward(self, x):
        xs = torch.split(x, self.width, dim=1)
        ys = [xs[0]]
        for i, conv in enumerate(self.convs, 1):
            ys.append(F.relu(conv(xs[i] if i == 1 else xs[i] + ys[-1])))
        return self.fuse(torch.cat(ys, dim=1))


class GLU(nn.Module):
    """Gated linear units (Dauphin et al., ICML 2017) on a map: a 1×1 conv to 2C channels,
    one half gating the other (F.glu over channels)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, 2 * c, 1)

    def forward(self, x):
        return F.glu(self.conv(x), dim=1)


class GatherExcite(nn.Module):
    """Gather-excite (Hu et al., NeurIPS 2018), GE-θ: two depthwise 3×3/2 convs gather
    each unit's neighbourhood, nearest interpolation spreads it back, a sigmoid gate."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gather = nn.Sequential(
            nn.Conv2d(c, c, 3, 2, 1, groups=c), nn.Conv2d(c, c, 3, 2, 1, groups=c)
        )

    def forward(self, x):
        g = F.interpolate(self.gather(x), size=x.shape[-2:], mode="nearest")
        return x * torch.sigmoid(g)


class NonLocal(nn.Module):
    """A non-local block (Wang et al., CVPR 2018), embedded Gaussian: every position's
    output a softmax-weighted sum over all positions, a 1×1 conv, a residual sum."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.theta, self.phi, self.g = (nn.Conv2d(c, c // 2, 1) for _ in range(3))
        self.out = nn.Conv2d(c // 2, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)  # (B, HW, C/2)
        k, v = self.phi(x).flatten(2), self.g(x).flatten(2).transpose(1, 2)
        y = torch.softmax(q @ k, dim=-1) @ v  # (B, HW, C/2)
        return x + self.out(y.transpose(1, 2).reshape(b, c // 2, h, w))


class Net(nn.Module):
    """A 3×3 conv, the block, a conv after it (3×3 unless `after` says otherwise)."""

    def __init__(self, block: nn.Module, after: int = 3, c: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(SIZE[0], c, 3, padding=1)
        self.block = block
        self.head = nn.Conv2d(c, c, after, padding=after // 2)

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


# --- the truth --------------------------------------------------------------------------------


def positive(model: nn.Module, seed: int = 0) -> nn.Module:
    """model with every weight in [0.01, 0.1): no gradient path cancels another, and no
    sigmoid or softmax saturates (its gradient 0 in floating point)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.01, 0.1)
    return model.eval()


def reach(model: nn.Module, size: tuple, module: nn.Module, unit=None, draws: int = 1) -> tuple:
    """(height, width) of the input pixels the gradient of one unit of `module`'s output
    reaches, over `draws` random images (a max pool passes it to one input of its window,
    each draw another): by default its centre, over all channels ((B, C, H, W): at H/2,
    W/2; a strip conv's (B·H, C, W): row H/2 of the batch, column W/2)."""
    name = next(n for n, m in model.named_modules() if m is module)
    twin = copy.deepcopy(model).double()  # float64: no gradient rounds to 0
    seen = torch.zeros(size[1:], dtype=torch.bool)
    for seed in range(draws):
        torch.manual_seed(seed)
        x = torch.rand(1, *size, dtype=torch.float64, requires_grad=True)
        _, out = outputs(twin.get_submodule(name), lambda x=x: twin(x))
        y = out[0]
        if unit is None:
            rows = y.shape[0] // 2 if y.dim() == 3 and y.shape[0] > 1 else None
            unit = (rows or 0, slice(None), *(n // 2 for n in y.shape[2:]))
        y[unit].sum().backward()
        seen |= x.grad[0].abs().sum(0) > 0
    return span(seen)


def traced(model: nn.Module, size: tuple = SIZE) -> dict[str, tuple[int, int]]:
    """{row name: (field, jump)}, once the rows' shapes are the real forward's, no call is
    unfollowed and every row has a field and a jump."""
    s = summary(model, size)
    leaves = {name for name, m in model.named_modules() if not list(m.children())}
    assert [(r.name, r.output_shape) for r in s.rows if r.name in leaves] == real_shapes(
        model, size
    )
    for r in s.rows:  # a block whose output its own code makes (x * gate) has a row too
        module = model.get_submodule(r.name) if r.name != "(model)" else model
        _, seen = outputs(module, lambda: model(torch.rand(1, *size)))
        assert tuple(seen[r.call - 1].shape[1:]) == r.output_shape, r.name
    assert [w.message for w in s.warnings if w.code == "unfollowed"] == []
    assert all(r.receptive_field is not None and r.jump is not None for r in s.rows), s
    return {r.name: (r.receptive_field, r.jump) for r in s.rows}


def clipped(rf: int, size: tuple = SIZE) -> int:
    """A field as the image shows it: at most its larger side."""
    return min(rf, max(size[1:]))


# --- the blocks -------------------------------------------------------------------------------

# block, the conv after it, the output's field by hand. Before picks.WINDOW_1D, GLU and
# Roles._off_map the trace lost ECA, SE with 1-D convs, triplet attention and GLU; the rest
# it followed already (kept: a regression would lose a block people use)
BLOCKS = {
    "ECA": (ECA, 3, 16),  # the gate: a global pool
    "SE (1-D convs)": (lambda: SEConv1d(8), 3, 16),
    "CBAM": (lambda: CBAM(8), 3, 16),
    "coordinate attention": (lambda: CoordAttention(8), 3, 16),  # a row's and a column's mean
    "selective kernel": (lambda: SelectiveKernel(8), 3, 16),
    "triplet attention": (TripletAttention, 3, 16),
    "SimAM": (SimAM, 3, 16),
    "Res2Net": (lambda: Res2Net(8), 3, 3 + 3 * 2 + 2),  # three cascaded 3×3 convs
    "GLU": (lambda: GLU(8), 3, 5),
    # 3 + 2, then + 2·2 (spacing 2): 9, spread back by nearest upsampling, a 1×1 conv
    "gather-excite": (lambda: GatherExcite(8), 1, 9),
    "non-local": (lambda: NonLocal(8), 3, 16),
}


@pytest.mark.parametrize("name", list(BLOCKS))
def test_each_block_is_followed_with_autograds_field(name):
    block, after, expected = BLOCKS[name]
    model = positive(Net(block(), after))
    rows = traced(model)
    assert clipped(rows["head"][0]) == expected
    assert rows["head"][1] == 1  # torch's 16 rows and columns on the 16-px image: 1 px apart
    assert max(reach(model, SIZE, model)) == expected


# --- the calls, on any axis -------------------------------------------------------------------


class Call(nn.Module):
    """A 3×3 conv, a call, a conv (3×3 unless `after` says otherwise)."""

    def __init__(self, call, after: int | tuple = 3, c: int = 4, out: int = 4) -> None:
        super().__init__()
        self.call = call
        self.stem = nn.Conv2d(SIZE[0], c, 3, padding=1)
        self.head = nn.Conv2d(out, 4, after, padding=0)

    def forward(self, x):
        return self.head(self.call(self.stem(x)))


def test_glu_along_width_reads_two_columns_half_the_map_apart():
    """F.glu(y, dim=-1) on 16 columns: column j times a gate of column j + 8, so a window
    of 2, dilation 8 (3 + 8 px), then the 1×3 conv: + 2. Height: 3."""
    model = positive(Call(lambda y: F.glu(y, dim=-1), after=(1, 3)))
    rows = traced(model)
    assert rows["head"] == (13, 1)
    assert reach(model, SIZE, model) == (3, 13)


def test_glu_along_height():
    model = positive(Call(lambda y: F.glu(y, dim=2), after=(3, 1)))
    assert traced(model)["head"] == (13, 1) and reach(model, SIZE, model) == (13, 3)


@pytest.mark.parametrize("how", ["cumsum", "cumprod", "Tensor.cumsum"])
def test_a_cumulative_sum_along_width_sees_the_whole_prefix(how):
    """Column j of a cumulative sum (product) reads columns 0..j: the last one the whole
    row, so the layer's field (its largest unit's) spans the width; the units keep their
    spacing. Height: the 3×3 convs' 5 px."""
    calls = {
        "cumsum": lambda y: torch.cumsum(y, dim=3),
        "cumprod": lambda y: torch.cumprod(y, -1),
        "Tensor.cumsum": lambda y: y.cumsum(-1),
    }
    model = positive(Call(calls[how], after=(3, 1)))
    rows = traced(model)
    assert rows["head"][0] >= 16 and rows["head"][1] == 1
    last = model(torch.zeros(1, *SIZE)).shape[-1] - 1
    assert reach(model, SIZE, model, (0, slice(None), 7, last)) == (5, 16)
    assert reach(model, SIZE, model, (0, slice(None), 7, 7)) == (5, 9)  # columns 0..8


def test_a_cumulative_sum_along_channels_moves_no_position():
    model = positive(Call(lambda y: y.cumsum(1)))
    assert traced(model)["head"] == (5, 1) and reach(model, SIZE, model) == (5, 5)


@pytest.mark.parametrize("dim", [1, -1])
def test_gumbel_softmax_is_a_softmax_over_its_dim(dim):
    """Over channels: each unit's own position (5 px after the convs); over the width
    (F.gumbel_softmax's default dim, -1): every column."""
    model = positive(Call(lambda y: F.gumbel_softmax(y, tau=0.5, dim=dim)))
    rows = traced(model)
    if dim == 1:
        assert rows["head"] == (5, 1) and reach(model, SIZE, model) == (5, 5)
    else:
        assert rows["head"][0] >= 16 and reach(model, SIZE, model) == (5, 16)


class Strips(nn.Module):
    """Axial (strip) convs: a 5×1 conv, then the rows as a batch of (B·H, C, W) lines, a
    1-D conv of 3, a max and an average pool of 3 (stride 1), a conv of 3 dilated 2, an
    average pool of 2 (stride 2), back to (B, C, H, W/2), a 1×1 conv."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(SIZE[0], c, (5, 1), padding=(2, 0))
        self.line = nn.Conv1d(c, c, 3, padding=1)
        self.max = nn.MaxPool1d(3, 1, 1)
        self.avg = nn.AvgPool1d(3, 1, 1)
        self.dilated = nn.Conv1d(c, c, 3, padding=2, dilation=2)
        self.down = nn.AvgPool1d(2)
        self.head = nn.Conv2d(c, c, 1)

    def forward(self, x):
        y = self.stem(x)
        b, c, h, w = y.shape
        t = y.permute(0, 2, 1, 3).reshape(b * h, c, w)  # (B·H, C, W)
        t = self.down(self.dilated(self.avg(self.max(self.line(t)))))  # (B·H, C, W/2)
        return self.head(t.reshape(b, h, c, -1).permute(0, 2, 1, 3))


def test_a_strip_conv_over_the_width_grows_the_width_alone():
    """Width: 1, + 2 (conv 3), + 2, + 2 (pools of 3), + 4 (dilation 2), + 1 (pool of 2,
    spacing 2): 12; height stays the 5×1 conv's 5 (the rows a batch: no 1-D window mixes
    them). The rows show the larger axis."""
    model = positive(Strips())
    rows = traced(model)
    assert [rows[n] for n in ("stem", "line", "max", "avg", "dilated", "down", "head")] == [
        (5, 1), (5, 1), (5, 1), (7, 1), (11, 1), (12, 2), (12, 2),
    ]  # fmt: skip
    assert reach(model, SIZE, model.dilated, draws=10) == (5, 11)
    assert reach(model, SIZE, model, draws=10) == (5, 12)


def test_functional_1d_windows_along_the_width():
    """F.conv1d, F.max_pool1d (with indices too) and F.avg_pool1d as a forward writes them:
    3 + 2, + 2 (max pool of 3), + 2 (average pool of 3), on a 1×3 stem; height 1."""

    class Lines(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(SIZE[0], 4, (1, 3), padding=(0, 1))
            self.weight = nn.Parameter(torch.rand(4, 4, 3))
            self.head = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.stem(x)  # (B, C, H, W)
            t = y.transpose(1, 2).flatten(0, 1)  # (B·H, C, W)
            t = F.conv1d(t, self.weight, padding=1)
            t = F.max_pool1d(t, 3, 1, 1, return_indices=True)[0]
            t = F.avg_pool1d(t, 3, 1, 1)
            return self.head(t.unflatten(0, (1, -1)).transpose(1, 2))

    model = positive(Lines())
    assert traced(model)["head"] == (9, 1)
    assert reach(model, SIZE, model, draws=10) == (1, 9)


class Tokens(nn.Module):
    """A 3×3 conv, its map flattened into H·W tokens, a 1-D conv of 5 along them, the tokens
    put back on the map, a 1×1 conv."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(SIZE[0], c, 3, padding=1)
        self.line = nn.Conv1d(c, c, 5, padding=2)
        self.head = nn.Conv2d(c, c, 1)

    def forward(self, x):
        y = self.stem(x)
        return self.head(self.line(y.flatten(2)).view_as(y))  # (B, C, H·W) and back


def test_a_1d_window_over_flattened_tokens_is_taken_to_see_the_whole_map():
    """A window of 5 tokens at a row's start reads the row above's last two: 4 rows (with
    the 3×3 conv) and all 16 columns. The trace's field there is the whole map, an upper
    bound along the height."""
    model = positive(Tokens())
    rows = traced(model)
    assert clipped(rows["line"][0]) == clipped(rows["head"][0]) == 16
    assert reach(model, SIZE, model, (0, slice(None), 8, 0)) == (4, 16)


class Rotated(nn.Module):
    """A 3×3 conv, the map turned to (B, H, C, W), a 3×3 conv over (C, W) whose channels are
    the rows (each its own if depthwise), turned back, a 1×1 conv."""

    def __init__(self, depthwise: bool, c: int = 4, head: int = 1) -> None:
        super().__init__()
        h = SIZE[1]
        self.stem = nn.Conv2d(SIZE[0], c, 3, padding=1)
        self.turned = nn.Conv2d(h, h, 3, padding=1, groups=h if depthwise else 1)
        self.head = nn.Conv2d(c, c, head, padding=head // 2)

    def forward(self, x):
        return self.head(self.turned(self.stem(x).transpose(1, 2)).transpose(1, 2))


@pytest.mark.parametrize("depthwise", [True, False])
def test_a_conv_over_a_turned_maps_channels_and_width(depthwise):
    """The window grows the width by 2 (3 + 2); the height, the conv's channels, stays 3
    px where each row is its own group, else every row is mixed: the whole height."""
    model = positive(Rotated(depthwise))
    rows = traced(model)
    assert clipped(rows["turned"][0]) == (5 if depthwise else 16)
    assert reach(model, SIZE, model) == ((3, 5) if depthwise else (16, 5))
    assert rows["turned"][1] == 1  # its rows are still 1 px apart: 16 of them on 16 px


@pytest.mark.parametrize("depthwise", [True, False])
def test_a_conv_after_a_turned_map_grows_its_field_by_the_rows_apart(depthwise):
    """A 3×3 conv after the turned one: 2 more pixels along the width (jump 1), the height
    as before; a jump of 16 (the map pooled to one row) would make it 50."""
    model = positive(Rotated(depthwise, head=3))
    rows = traced(model)
    height, width = reach(model, SIZE, model)
    assert (height, width) == ((5, 7) if depthwise else (16, 7))
    assert clipped(rows["head"][0]) == max(height, width) and rows["head"][1] == 1


class PointwiseOverRows(nn.Module):
    """A 3×3 conv, the rows made the channels of a 1×1 conv (B, H, C, W), turned back, a
    3×3 conv: the 1×1 mixes every row, so the head sees the whole height."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        h = SIZE[1]
        self.stem, self.mix = nn.Conv2d(SIZE[0], c, 3, padding=1), nn.Conv2d(h, h, 1)
        self.head = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.head(self.mix(self.stem(x).transpose(1, 2)).transpose(1, 2))


def test_a_pointwise_conv_over_the_rows_mixes_them():
    """Before, a 1×1 conv off the map kept the field (5 px): autograd reads 16 rows."""
    model = positive(PointwiseOverRows())
    rows = traced(model)
    height, width = reach(model, SIZE, model)
    assert (height, width) == (16, 5)
    assert clipped(rows["head"][0]) == 16 and rows["head"][1] == 1
