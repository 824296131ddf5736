"""cnnlab.summary on architectures written by other people (test_summary_zoo.py: MONAI,
Hugging Face transformers, ShuffleNet V2 / GhostNet / Inception / Xception / SqueezeNet /
MobileNet V3 written after their papers) and on each way a tensor can travel through a
forward. Truths: torch's own forward (forward hooks on every leaf module), sum(p.numel()),
torchinfo's MACs, a real forward at the input sizes the fixed-size lint names."""

from __future__ import annotations

import math

import pytest
import torch
import torchinfo
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.errors import CnnlabError
from test_summary_zoo import FAMILIES, make

# Lints an architecture really has at the tests' input size, and why; every other lint
# (probabilities-out and bounded-scores too: each ends in logits, its softmaxes and tanhs
# inside) stays silent.
EXPECTED = {
    # SqueezeNet 1.1's stem is a 3×3/2 conv without padding: on an even input (64 here, 224
    # in the paper) (I − 3)/2 is not an integer and the last row and column are never read.
    "squeezenet": {"floor"},
    # PP-HGNetV2's stem pads (0, 1, 0, 1) before its 2×2 convs and 2×2 pool: asymmetric, each
    # shifts the map by half a pixel, as the lint says.
    "hf-hgnet-v2": {"even-kernel-same"},
    # MobileViTV2's blocks end in a 1×1 conv + BatchNorm with no activation, and where the
    # next block's 1×1 expansion reads it (no residual: a stride or a new width) and the
    # middle is no narrower than the input, the pair is one linear map with fewer weights
    # (W2·W1, §4.1); so at the published width too (64→64→128 in stage 2).
    "hf-mobilevit-v2": {"linear-collapse"},
    # QuickNAT's last dense block ends in a 1×1 conv (32 -> 8 here) read only by the
    # classifier's 1×1 conv (8 -> 2), nothing between: one 32 -> 2 map with fewer weights.
    "monai-quicknat": {"linear-collapse"},
    # FlexibleUNet's EfficientNet-B0 encoder ends in a linear bottleneck (1×1, 1152 -> 320,
    # BatchNorm, no activation) read only by the decoder's 1×1 preconv (320 -> 160): one
    # 1152 -> 160 map has fewer weights than the pair.
    "monai-flexible-unet": {"linear-collapse"},
    # MONAI's Classifier flattens its last map into a Linear sized for `in_shape`: fixed
    # size by design; at 32×32 its two 3×3/2 stages see 19 px, and the Linear holds most
    # of the weights.
    "monai-classifier": {"fixed-size", "flatten-explosion", "rf-small"},
    # The VarAutoEncoder's code is a Linear on its flattened last map (sized for `in_shape`),
    # whose units see 7 px of 32 after its two 3×3/2 convs.
    "monai-var-autoencoder": {"fixed-size", "rf-small"},
    # MONAI's ViT ends its classification head in nn.Tanh (post_activation="Tanh", its
    # default): its 10 scores lie in [−1, 1], so softmax gives no class more than 45.1 %.
    "monai-vit": {"bounded-scores"},
    # Perceiver's conv preprocessing (the Hugging Face port) max-pools its 16×16 map with an
    # unpadded 3×3/2 window: (16 − 3)/2 is not an integer, the last row and column go unread.
    "hf-perceiver-convprocessing": {"floor"},
}


def leaf_calls(model: nn.Module, input_size) -> tuple[list, int]:
    """(name, output shape of one image) of every leaf module call in a real forward, and
    the MACs summary counts less those torchinfo counts, call by call. torchinfo counts a
    leaf's parameters named `weight` or `bias` (DINOv2's layer scale `lambda1`: none),
    each once per row of the output's first axis (the batch: 1, or the windows and patches
    Swin, MobileViT and LeViT fold into it), and per position too for a class whose name
    contains "Conv"; a parameter whose name only contains either (Swin's
    relative_position_bias_table) once per row of the output's first two axes; a module
    with children not at all (BiT's weight-standardized conv, which pads with a child).
    summary counts a conv per output position, a Linear per output row, any other leaf
    once per parameter (`macs.py`), and an nn.MultiheadAttention (a module with a child,
    out_proj, that its forward never calls: torchinfo counts none of it; SigLIP's pooling
    head) its projections per row: q and out_proj per query token, k and v per key token."""
    seen, extra, handles = [], [0], []

    def theirs(m: nn.Module, out: torch.Tensor) -> int:
        named = sum(p.numel() for n, p in m.named_parameters() if n in ("weight", "bias"))
        # a name containing either (an RNN's weight_ih_l0, Swin's relative_position_bias_table)
        inner = sum(
            p.numel() for n, p in m.named_parameters()
            if n not in ("weight", "bias") and ("weight" in n or "bias" in n)
        )  # fmt: skip
        if "Conv" in type(m).__name__:
            return named * out.shape[0] * math.prod(out.shape[2:])
        return named * out.shape[0] + inner * math.prod(out.shape[:2])

    def ours(m: nn.Module, out: torch.Tensor, inputs: tuple = ()) -> int:
        n = sum(p.numel() for p in m.parameters())
        if isinstance(m, nn.MultiheadAttention):
            keys = math.prod(inputs[1].shape[:-1])  # every sequence's keys
            kv = m.embed_dim * (m.kdim + m.vdim) + 2 * m.embed_dim
            return (n - kv) * math.prod(out.shape[:-1]) + kv * keys
        if isinstance(m, nn.modules.conv._ConvNd):
            return n * math.prod(out.shape[2:])
        return n * math.prod(out.shape[:-1]) if isinstance(m, nn.Linear) else n

    def hook(name, leaf):
        def record(m, inputs, out):
            if out is None:  # an nn.Identity called on None (Perceiver's absent mask): no row
                return
            out = out if isinstance(out, torch.Tensor) else out[0]
            if leaf:
                seen.append((name, tuple(out.shape)))
                extra[0] += ours(m, out) - theirs(m, out)
            else:  # a conv or attention with children: its own call is summary's row
                extra[0] += ours(m, out, inputs)

        return record

    for name, m in model.named_modules():
        leaf = not list(m.children())
        if leaf or isinstance(m, (nn.modules.conv._ConvNd, nn.MultiheadAttention)):
            handles.append(m.register_forward_hook(hook(name, leaf)))
    with torch.no_grad():
        model(torch.randn(1, *input_size))
    for h in handles:
        h.remove()
    return one_image(model, input_size, seen), extra[0]


def one_image(model: nn.Module, input_size, seen: list) -> list:
    """Each leaf call's (name, shape of a batch of one) as one image's: without the batch
    axis, the one a batch of two doubles (a sequence-first (T, B, F) keeps T); axis 0 where
    it is that one or none is (a batch folded into axis 0: Swin's windows)."""
    doubled = []
    handles = [
        m.register_forward_hook(
            lambda _m, _i, out: (
                doubled.append((out if isinstance(out, torch.Tensor) else out[0]).shape)
                if out is not None
                else None
            )  # fmt: skip
        )
        for _, m in model.named_modules()
        if not list(m.children())
    ]
    with torch.no_grad():
        model(torch.randn(2, *input_size))
    for h in handles:
        h.remove()
    found = []
    for (name, one), two in zip(seen, doubled, strict=True):
        moved = [k for k, (a, b) in enumerate(zip(one, two, strict=True)) if a != b]
        k = moved[0] if len(moved) == 1 and one[moved[0]] == 1 else 0
        found.append((name, one[:k] + one[k + 1 :]))
    return found


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_rows_params_and_macs_match_torch_and_torchinfo(family):
    model, size = make(family)
    s = summary(model, size)
    leaves = {n for n, m in model.named_modules() if not list(m.children())}
    calls, extra = leaf_calls(model, size)
    assert [(r.name, r.output_shape) for r in s.rows if r.name in leaves] == calls
    assert s.total_params == sum(p.numel() for p in model.parameters())
    info = torchinfo.summary(model, input_size=(1, *size), verbose=0)
    assert s.total_macs == info.total_mult_adds + extra
    assert all(r.receptive_field is not None for r in s.rows)  # every tensor followed
    assert {w.code for w in s.warnings} == EXPECTED.get(family, set()), s.warnings


def test_a_channel_shuffle_does_not_grow_the_receptive_field(monkeypatch):
    """A shuffle only reorders channels: ShuffleNet V2's fields equal those of the same net
    without it (the shuffle replaced by the identity), and a 5×5 conv before one stays 5."""
    model, size = make("shufflenet-v2")
    with_shuffle = [(r.name, r.receptive_field, r.jump) for r in summary(model, size).rows]
    monkeypatch.setattr("test_summary_zoo.channel_shuffle", lambda x, groups: x)
    without = [(r.name, r.receptive_field, r.jump) for r in summary(model, size).rows]
    assert with_shuffle == without

    class Shuffle(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 5, padding=2)
            self.out = nn.Identity()

        def forward(self, x):
            y = self.conv(x)  # (B, 8, H, W)
            b, c, h, w = y.shape
            y = y.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)
            return self.out(y)

    rows = {r.name: r for r in summary(Shuffle(), (3, 16, 16)).rows}
    assert (rows["out"].receptive_field, rows["out"].jump) == (5, 1)


def test_shufflenet_v2_at_224_has_a_head_field_of_pixels_not_astronomy():
    """The published ShuffleNet V2 1× at 224: the last conv's field is that of its chain of
    windows (a few hundred px), and every row is followed."""
    model, size = make("shufflenet-v2", full=True)
    s = summary(model, size)
    assert len([r for r in s.rows if r.kind == "Conv2d"]) == 56
    conv5 = next(r for r in s.rows if r.name == "conv5.0")
    assert 224 < conv5.receptive_field < 1000 and conv5.jump == 32


class Travels(nn.Module):
    """A tensor through chunk, split, unbind, slicing, cat, stack, view/reshape/flatten,
    permute/transpose, expand, `+` and `*` between branches, and one module called twice."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)  # field 3
        self.a = nn.Conv2d(4, 4, 3, padding=1)  # after chunk: 5
        self.b = nn.Conv2d(2, 2, 5, padding=2)  # after split: 7
        self.shared = nn.Conv2d(8, 8, 3, padding=1)  # called twice: 7 + 2, then 9 + 2
        self.mix = nn.Linear(8, 8)  # channels-last, on the channel axis
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)  # (B, 8, H, W)
        p, q = x.chunk(2, dim=1)  # 2 × (B, 4, H, W)
        r, s = torch.split(q, 2, dim=1)  # 2 × (B, 2, H, W)
        planes = torch.stack([self.a(p)[:, :2], self.b(r), s], dim=1)  # (B, 3, 2, H, W)
        y = torch.cat(planes.unbind(1), dim=1)[:, :, :, :]  # (B, 6, H, W)
        y = torch.cat([y, x[:, 6:]], 1)  # (B, 8, H, W)
        y = self.shared(y) + y.mean(1, keepdim=True).expand(-1, 8, -1, -1)
        y = self.shared(y) * torch.sigmoid(y)
        z = self.mix(y.permute(0, 2, 3, 1)).transpose(1, 3).transpose(2, 3)  # (B, 8, H, W)
        z = z.reshape(z.shape[0], 8, -1).view_as(z.flatten(2))  # (B, 8, H·W)
        return self.head(z.mean(-1))


def test_every_way_a_tensor_travels_keeps_its_rows_and_fields():
    model, size = Travels(), (3, 10, 10)
    s = summary(model, size)
    calls, _ = leaf_calls(model, size)
    assert [(r.name, r.output_shape) for r in s.rows if r.name != ""] == calls
    fields = [(r.name, r.call, r.receptive_field) for r in s.rows if r.name != "head"]
    assert fields[:6] == [
        ("stem", 1, 3), ("a", 1, 5), ("b", 1, 7), ("shared", 1, 9), ("shared", 2, 11),
        ("mix", 1, 11),
    ]  # fmt: skip
    assert "shared #2" in str(s) and s.warnings == []
    assert next(r for r in s.rows if r.name == "head").receptive_field >= 10  # global mean


def test_a_function_the_trace_cannot_follow_is_named_with_the_rows_it_leaves_empty():
    class Sorted(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.after = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.after(torch.renorm(self.conv(x), 2, 3, 1.0))

    s = summary(Sorted(), (3, 8, 8))
    assert [(r.name, r.receptive_field) for r in s.rows] == [("conv", 3), ("after", None)]
    (lint,) = s.warnings
    assert lint.code == "unfollowed" and "renorm" in lint.message and "after" in lint.message
    assert "?" in str(s)


class FixedPoolResNet(nn.Module):
    """A ResNet-shaped net (stride 32) that ends like torchvision's first ResNets did:
    AvgPool2d(7), flatten, Linear; narrow so that a real forward is cheap."""

    def __init__(self):
        super().__init__()
        layers, c = [nn.Conv2d(3, 4, 7, 2, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1)], 4
        for _ in range(3):
            layers += [nn.Conv2d(c, c * 2, 3, 2, 1), nn.ReLU()]
            c *= 2
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AvgPool2d(7)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def runs(model: nn.Module, side: int) -> bool:
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, side, side))
    except RuntimeError:
        return False
    return True


def test_fixed_size_fires_for_a_fixed_pooling_window_and_names_the_sizes_that_run():
    """The sizes it names are exactly where torch's forward runs (the ends and one beyond)."""
    model = FixedPoolResNet()
    (lint,) = [w for w in summary(model, (3, 224, 224)).warnings if w.code == "fixed-size"]
    assert "7×7 pooling window at layer avgpool" in lint.message
    lo, hi = (int(n) for n in lint.message.split(" px on each side")[0].split("(")[-1].split("–"))
    assert lo <= 224 <= hi
    assert [runs(model, n) for n in (lo - 1, lo, hi, hi + 1)] == [False, True, True, False]


def test_a_forward_that_fails_names_the_layer_and_the_shape_it_got():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(100, 2))
    with pytest.raises(CnnlabError, match=r"layer 2 \(Linear\) on a 1×288 input"):
        summary(model, (3, 8, 8))
    with pytest.raises(CnnlabError, match=r"layer 0 \(Conv2d\) on a 1×1×8×8 input"):
        summary(model, (1, 8, 8))


class ViewNet(nn.Module):
    """Fails in its own forward, between its layers: a .view sized for 16×16 images."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 8, 3)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(8 * 14 * 14, 2))

    def forward(self, x):
        return self.head(self.c(x).view(1, 8 * 14 * 14))


def test_a_forward_failing_between_layers_names_the_last_layer_that_ran():
    with pytest.raises(
        CnnlabError,
        match=r"layer \(model\) \(ViewNet\) on a 1×3×8×8 input, after layer c \(Conv2d\) "
        r"gave 1×8×6×6:",
    ):
        summary(ViewNet(), (3, 8, 8))
    wrapped = nn.Sequential(ViewNet())  # the same, one level down: named by its container
    with pytest.raises(
        CnnlabError, match=r"layer 0 \(ViewNet\) on a 1×3×8×8 input, after layer 0.c "
    ):
        summary(wrapped, (3, 8, 8))
    assert "after" not in str(_error(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(100, 2))))


def _error(model: nn.Module) -> CnnlabError:
    with pytest.raises(CnnlabError) as info:
        summary(model, (3, 8, 8))
    return info.value
