"""cnnlab.summary against independent truths: torch's real forward (shapes), torchinfo
(total params and MACs), published receptive fields (VGG-16), the notes' numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchinfo
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

import cnnlab
from cnnlab.design.summary import Lint, Summary, SummaryRow, summary
from cnnlab.errors import CnnlabError, SpecError
from test_spec import valid_specs

# --- models cnnlab did not build ------------------------------------------------------------


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: in-place ReLU, `out += identity`, 1×1 downsample."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """A torchvision-style ResNet (stem 7×7/2 + max-pool, BasicBlock stages, GAP, fc)."""

    def __init__(self, widths=(16, 32, 64), classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [BasicBlock(c, w, 1 if i == 0 else 2), BasicBlock(w, w)]
            c = w
        self.layers = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layers(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def vgg_style() -> nn.Sequential:
    """A VGG-style Sequential with a flatten head, 3×32×32."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 64),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(64, 10),
    )


class GroupsDilation(nn.Module):
    """Grouped, depthwise and dilated convs, a two-branch torch.cat and functional calls."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=2, dilation=2)
        self.grouped = nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=4)
        self.depthwise = nn.Conv2d(32, 32, 5, padding=4, dilation=2, groups=32, bias=False)
        self.branch3 = nn.Conv2d(32, 8, 3, padding=1)
        self.branch5 = nn.Conv2d(32, 8, 5, padding=2)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.relu(self.grouped(x))
        x = F.gelu(self.depthwise(x))
        x = torch.cat([F.relu(self.branch3(x)), F.relu(self.branch5(x))], dim=1)
        return self.head(x.mean((2, 3)))


def vgg16_features() -> nn.Sequential:
    """VGG-16's conv base as torchvision builds it (features.28 = conv5_3, .30 = pool5)."""
    layers, c = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers, nn.MaxPool2d(2, 2))


# --- truths -------------------------------------------------------------------------------


def real_leaf_shapes(model: nn.Module, input_size) -> list[tuple[str, tuple[int, ...]]]:
    """(name, output shape of one image) of every leaf module call, by a real forward."""
    seen, handles = [], []
    for name, m in model.named_modules():
        if not list(m.children()):
            hook = (lambda n: lambda _m, _i, out: seen.append((n, tuple(out.shape[1:]))))(name)
            handles.append(m.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, *input_size))
    for h in handles:
        h.remove()
    return seen


def leaf_rows(s: Summary, model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    leaves = {n for n, m in model.named_modules() if not list(m.children())}
    return [(r.name, r.output_shape) for r in s.rows if r.name in leaves]


MODELS = [
    (ResNet, (3, 64, 64)),
    (vgg_style, (3, 32, 32)),
    (GroupsDilation, (3, 40, 40)),
]


@pytest.mark.parametrize("make, input_size", MODELS, ids=["resnet", "vgg", "groups-dilation"])
def test_foreign_models_match_torch_shapes_and_torchinfo_totals(make, input_size):
    model = make()
    s = summary(model, input_size)
    assert leaf_rows(s, model) == real_leaf_shapes(model, input_size)
    info = torchinfo.summary(model, input_size=(1, *input_size), verbose=0)
    assert s.total_params == info.total_params
    assert s.trainable_params == info.trainable_params
    assert s.total_macs == info.total_mult_adds


def test_param_counts_per_row_are_the_modules_own():
    model = ResNet()
    s = summary(model, (3, 32, 32))
    modules = dict(model.named_modules())
    for r in s.rows:
        assert r.params == sum(p.numel() for p in modules[r.name].parameters(recurse=False))
    assert s.total_params == sum(p.numel() for p in model.parameters())


def test_vgg16_receptive_fields_are_the_published_ones():
    """conv5_3 sees 196 px, pool5 212 px (Araujo et al., Distill 2019)."""
    rows = {r.name: r for r in summary(vgg16_features(), (3, 224, 224)).rows}
    assert (rows["28"].receptive_field, rows["28"].jump) == (196, 16)
    assert (rows["30"].receptive_field, rows["30"].jump) == (212, 32)
    assert rows["30"].output_shape == (512, 7, 7)


def test_branches_take_the_largest_receptive_field():
    rows = {r.name: r for r in summary(GroupsDilation(), (3, 40, 40)).rows}
    # stem: dilated 3×3 -> 5; grouped 3×3/2 -> 7 (jump 2); depthwise 5×5 dil 2 -> 7 + 8·2 = 23
    assert [rows[n].receptive_field for n in ("stem", "grouped", "depthwise")] == [5, 7, 23]
    assert rows["branch3"].receptive_field == 23 + 2 * 2
    assert rows["branch5"].receptive_field == 23 + 4 * 2
    # the model's own row shows the head's output; it is global (sees the whole image)
    assert rows["head"].receptive_field >= 40


def test_container_whose_output_is_its_own_gets_a_row():
    class Concat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(4, 6, 3, padding=1), nn.Conv2d(4, 2, 1)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x)], 1)

    model = nn.Sequential(Concat(), nn.ReLU())
    names = [(r.name, r.output_shape) for r in summary(model, (4, 8, 8)).rows]
    assert names == [("0.a", (6, 8, 8)), ("0.b", (2, 8, 8)), ("0", (8, 8, 8)), ("1", (8, 8, 8))]


# --- lints ----------------------------------------------------------------------------------


def codes(model, input_size) -> dict[str, Lint]:
    return {w.code: w for w in summary(model, input_size).warnings}


def good_net() -> nn.Sequential:
    blocks = []
    for c_in, c_out in ((3, 16), (16, 32), (32, 64), (64, 64)):
        blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        blocks += [nn.MaxPool2d(2)]
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


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


# --- the user's model is left as it was; the meta fallback ----------------------------------


def test_user_model_is_unchanged():
    model = ResNet()
    model.train()
    model.layers[1].eval()
    model.conv1.weight.requires_grad_(False)
    calls = []
    model.fc.register_forward_hook(lambda *a: calls.append(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    s = summary(model, (3, 32, 32))
    assert calls == []  # the user's hook did not fire
    assert len(model.fc._forward_hooks) == 1
    assert all(not m._forward_pre_hooks for m in model.modules())
    assert [m.training for m in model.modules()] == modes
    assert not model.conv1.weight.requires_grad and model.fc.weight.requires_grad
    after = model.state_dict()
    assert all(
        after[k].device.type == "cpu" and torch.equal(after[k], v) for k, v in before.items()
    )
    assert s.trainable_params == s.total_params - model.conv1.weight.numel()


def test_falls_back_to_a_real_forward_where_meta_fails():
    class NeedsData(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            scale = float(y.abs().max().item()) + 1.0  # impossible on meta
            return F.relu(y) / scale

    model = NeedsData()
    calls = []
    model.conv.register_forward_hook(lambda *a: calls.append(1))
    s = summary(model, (1, 10, 10))
    assert calls == []  # the real forward ran on a copy without the user's hooks
    assert [(r.name, r.output_shape) for r in s.rows] == [("conv", (4, 8, 8)), ("", (4, 8, 8))]
    assert s.rows[0].receptive_field == 3


def test_rendering_and_json():
    s = summary(good_net(), (3, 32, 32))
    assert isinstance(s.rows[0], SummaryRow)
    text = str(s)
    assert f"{s.total_params:,}" in text and "MaxPool2d" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    d = json.loads(json.dumps(s.to_dict()))
    assert d["total_params"] == s.total_params and d["rows"][0]["output_shape"] == [16, 32, 32]


def test_bad_input_size_is_a_cnnlab_error():
    for bad in [(3, 32), (3, 0, 32), ("a", 2, 2), None]:
        with pytest.raises(CnnlabError):
            summary(good_net(), bad)
    with pytest.raises(CnnlabError, match="layer 0 \\(Conv2d\\)"):
        summary(good_net(), (1, 32, 32))  # 3 channels expected


# --- random specs: summary (meta, no real data) against the built model's real forward -----


@st.composite
def specs(draw) -> dict:
    """Small valid specs: conv/pool/activation/batchnorm/residual blocks, a GAP or flatten head."""
    channels = draw(st.sampled_from([1, 3]))
    h, w = draw(st.integers(16, 28)), draw(st.integers(16, 28))
    layers, downsamples = [], 0
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "act", "batchnorm", "residual"]))
        if kind == "conv":
            stride = draw(st.integers(1, 2)) if downsamples < 2 else 1
            downsamples += stride == 2
            pad = "same" if stride == 1 and draw(st.booleans()) else draw(st.integers(0, 1))
            conv = {"filters": draw(st.integers(1, 8)), "kernel": draw(st.integers(1, 3))}
            layers.append({"conv": {**conv, "stride": stride, "padding": pad}})
        elif kind == "pool" and downsamples < 2:
            downsamples += 1
            pool = draw(st.sampled_from(["maxpool", "avgpool", "concatpool"]))
            layers.append({pool: draw(st.integers(2, 3))})
        elif kind == "act":
            layers.append(draw(st.sampled_from(["relu", "tanh", "gelu", {"leaky_relu": 0.1}])))
        elif kind == "batchnorm":
            layers.append("batchnorm")
        elif kind == "residual":
            body = [{"conv": {"filters": draw(st.integers(1, 8)), "padding": "same"}}, "relu"]
            layers.append({"residual": body})
    layers.append(draw(st.sampled_from(["gap", "flatten"])))
    if draw(st.booleans()):
        layers += ["dropout", {"linear": draw(st.integers(1, 10))}]
    return {"name": "random", "input": [channels, h, w], "layers": layers}


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_random_specs_match_the_built_models_real_forward(spec):
    try:
        spec = cnnlab.load_spec(spec)
    except SpecError:  # unpadded convs after two poolings can shrink a map below 1×1
        assume(False)
    s = summary(spec)  # traced on meta: no real tensor
    model = cnnlab.build(spec)
    assert s.input_size == tuple(spec.input)
    assert leaf_rows(s, model) == real_leaf_shapes(model, s.input_size)
    modules = dict(model.named_modules())
    for r in s.rows:
        assert r.params == sum(p.numel() for p in modules[r.name].parameters(recurse=False))
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.total_macs == torchinfo.summary(model, (1, *s.input_size), verbose=0).total_mult_adds


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_the_spec_suites_random_specs_match_torch_and_their_own_arithmetic(case):
    """test_spec's generator (kernels up to its map, dilation, groups, (h, w) pairs, 'same' at
    any stride, adaptive concat pooling, flat residuals): summary's shapes equal the real
    forward's, its parameters the generator's own count, its MACs torchinfo's."""
    s = summary(case.spec)
    model = cnnlab.build(case.spec)
    assert leaf_rows(s, model) == real_leaf_shapes(model, s.input_size)
    assert s.total_params == case.params
    assert s.total_macs == torchinfo.summary(model, (1, *s.input_size), verbose=0).total_mult_adds


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_an_even_same_kernel_wider_than_a_1x1_map_keeps_its_size():
    """Found by the test above: 'same' pads (0, 1) for a width-2 kernel, so a 1×1 map stays
    1×1 (torch agrees); the before-pad alone is not the window's padding."""
    wide = {"conv": {"filters": 1, "kernel": [1, 2], "padding": "same"}}
    spec = {"input": [1, 3, 3], "layers": [{"conv": {"filters": 1}}, wide, "gap", {"linear": 1}]}
    s = summary(spec)
    model = cnnlab.build(spec)
    assert leaf_rows(s, model) == real_leaf_shapes(model, (1, 3, 3))
    assert "even-kernel-same" in {w.code for w in s.warnings}


def test_cli_bad_spec_is_one_line_and_exit_2_in_a_real_process(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [1, 5, 5]\nlayers:\n  - conv: {filters: 2, kernel: 7}\n")
    cli = str(Path(sys.executable).with_name("cnnlab"))
    out = subprocess.run([cli, "summary", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "layer 0 (conv): kernel 7" in out.stderr


def test_notes_numbers_fmnist_tf_and_the_mlp_comparison(capsys):
    from cnnlab.cli import main

    assert summary("fmnist-tf", (1, 28, 28)).total_params == 3_274_634
    assert main(["summary", "fmnist-tf", "--input", "1,28,28", "--compare-mlp", "1000"]) == 0
    out = capsys.readouterr().out
    assert "3,274,634" in out and "785,000" in out  # 28·28 inputs (+1 bias) × 1,000 units
    assert (
        main(["summary", "fmnist-tf", "--input", "3,224,224", "--json", "--compare-mlp", "1000"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["compare_mlp"]["params"] == 150_529_000  # §1


@pytest.mark.parametrize("bad", ["1,28", "1,28,x", "0,28,28", "-1,28,28", ""])
def test_cli_malformed_input_is_one_line_exit_2(bad, capsys):
    from cnnlab.cli import main

    assert main(["summary", "fmnist-tf", f"--input={bad}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--input" in err


def test_spec_output_below_one_pixel_is_a_spec_error():
    with pytest.raises(SpecError, match="layer"):
        summary("lenet5", (1, 4, 4))


def test_a_spec_is_summarised_without_real_tensors():
    """fmnist-tf at 3×1024×1024 has a 4.3-billion-parameter dense layer (17 GB at float32):
    only a meta build can summarise it, and its count follows §1's formulas."""
    from cnnlab.geometry import conv_params, linear_params

    s = summary("fmnist-tf", (3, 1024, 1024))
    expected = (
        conv_params(5, 3, 32)
        + conv_params(5, 32, 64)
        + linear_params(64 * 256 * 256, 1024)
        + linear_params(1024, 10)
    )
    assert s.total_params == expected > 4_000_000_000
    assert s.rows[-1].output_shape == (10,)


def test_shared_modules_parametrizations_and_module_lists():
    """A module used twice (its parameters counted once), a weight-normed conv (its own copy
    protocol) and a plain list attribute that points at submodules."""

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.utils.parametrizations.weight_norm(nn.Conv2d(3, 8, 3, padding=1))
            self.shared = nn.Conv2d(8, 8, 3, padding=1)
            self.order = [self.shared, self.shared]  # not registered twice: a plain list
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            x = F.relu(self.conv(x))
            for m in self.order:
                x = F.relu(m(x))
            return self.fc(x.mean((2, 3)))

    model = Odd()
    weight = model.conv.weight.detach().clone()
    s = summary(model, (3, 12, 12))
    assert s.total_params == sum(p.numel() for p in model.parameters())
    convs = [r for r in s.rows if r.kind.endswith("Conv2d")]  # ParametrizedConv2d, Conv2d
    assert [(r.name, r.receptive_field) for r in convs] == [
        ("conv", 3),
        ("shared", 5),
        ("shared", 7),
    ]
    first, shared = (8 * 3 * 9 + 8) * 12 * 12, (8 * 8 * 9 + 8) * 12 * 12  # (weights + bias)·H·W
    assert [r.macs for r in convs] == [first, shared, shared]
    assert torch.equal(model.conv.weight, weight) and model.conv.weight.device.type == "cpu"


# --- the speed tricks change nothing: torch's shapes and errors, torchinfo's totals, the GC --


class Shortcuts(nn.Module):
    """Layers whose meta output summary makes without running torch's kernel, in their less
    common forms: a linear map on the last axis of a map, adaptive pooling to (3, None) and
    to a size that does not divide the input, activations, batch norm on a 1×1 map, a shared
    module, and element-wise `+` and `*`."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = nn.Linear(12, 12, bias=False)  # along the width
        self.rows = nn.AdaptiveAvgPool2d((3, None))
        self.odd = nn.AdaptiveAvgPool2d(5)  # 12 -> 5
        self.acts = nn.Sequential(nn.LeakyReLU(0.1), nn.GELU(), nn.SiLU(), nn.Dropout(0.2))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.bn = nn.BatchNorm2d(8)
        self.gate = nn.Sigmoid()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.conv(x)  # (B, 8, 12, 12)
        x = x + self.mix(x)  # (B, 8, 12, 12)
        y = self.rows(x)  # (B, 8, 3, 12)
        z = self.acts(self.odd(x))  # (B, 8, 5, 5)
        g = self.gate(self.bn(self.gap(z)))  # (B, 8, 1, 1)
        return self.fc(torch.flatten(g * self.gap(y), 1))  # (B, 4)


def test_meta_shortcuts_give_torchs_shapes_and_torchinfos_totals():
    model = Shortcuts()
    s = summary(model, (3, 12, 12))
    assert leaf_rows(s, model) == real_leaf_shapes(model, (3, 12, 12))
    info = torchinfo.summary(model, input_size=(1, 3, 12, 12), verbose=0)
    assert s.total_params == info.total_params
    # torchinfo counts a linear map applied along a (8, 12, 12) map's last axis once (144),
    # summary at each of its 8·12 positions
    assert s.total_macs == info.total_mult_adds - 144 + 144 * 8 * 12


def test_a_linear_layer_that_does_not_fit_still_gets_torchs_error_with_its_name():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(10, 2))  # 4·6·6 in
    with pytest.raises(CnnlabError, match=r"layer 2 \(Linear\).*144"):
        summary(model, (3, 8, 8))


GC_CHECK = """
import gc
from cnnlab import summary
from test_summary import ResNet

model = ResNet()
assert gc.isenabled()
summary(model, (3, 32, 32))
assert gc.isenabled()
gc.disable()
gc.collect()
summary(model, (3, 32, 32))
assert not gc.isenabled()
print(gc.collect())  # unreachable objects the call left behind
"""


def test_the_garbage_collector_is_left_as_found_and_given_nothing_to_do():
    """summary pauses Python's cyclic garbage collector while it runs and leaves no
    reference cycles: the traced copy is freed by reference counting when it returns.
    In a fresh interpreter, so that what other tests left behind is not counted."""
    here = str(Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", GC_CHECK], capture_output=True, text=True, cwd=here)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0"]
