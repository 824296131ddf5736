"""cnnlab.summary of torch models cnnlab did not build, against independent truths: torch's
real forward (shapes), torchinfo (total params and MACs), published receptive fields
(VGG-16); the user's model left as it was, the meta fallback, rendering. Specs (cnnlab's
own models) and the `cnnlab summary` command: test_summary_specs.py."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re

import pytest
import torch
import torch.nn.functional as F
import torchinfo
from torch import nn

from cnnlab.design.summary import Summary, SummaryRow, summary
from cnnlab.errors import CnnlabError

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


# --- a model with no lints ---------------------------------------------------------------


def good_net() -> nn.Sequential:
    blocks = []
    for c_in, c_out in ((3, 16), (16, 32), (32, 64), (64, 64)):
        blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        blocks += [nn.MaxPool2d(2)]
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


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


def test_rows_are_the_dataclass_its_init_would_make():
    """summary builds its rows without SummaryRow's own __init__ (speed): each row must be
    equal, hash and print as the one the dataclass makes from the same fields."""
    rows = summary(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (3, 8, 8)).rows
    for row in rows:
        made = SummaryRow(**{f.name: getattr(row, f.name) for f in dataclasses.fields(row)})
        assert row == made and hash(row) == hash(made) and repr(row) == repr(made)
        assert vars(row) == vars(made)
        assert pickle.loads(pickle.dumps(row)) == made


class _KeepsItself(nn.Conv2d):
    def __deepcopy__(self, memo):
        return self


def test_a_module_summary_cannot_copy_is_named_in_one_clear_error():
    """A TorchScript submodule, or a __deepcopy__ returning the module itself, was a KeyError
    (an id) from deep inside the copy."""
    scripted = nn.Sequential(torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3))), nn.ReLU())
    with pytest.raises(CnnlabError, match=r"module '0' \(RecursiveScriptModule\).*jit.script"):
        summary(scripted, (3, 8, 8))
    keeps = nn.Sequential(nn.ReLU(), _KeepsItself(3, 4, 3))
    with pytest.raises(CnnlabError, match=r"module '1' \(_KeepsItself\).*__deepcopy__"):
        summary(keeps, (3, 8, 8))
    assert keeps(torch.zeros(1, 3, 8, 8)).shape == (1, 4, 6, 6)  # the model still works


@pytest.mark.parametrize("how", ["script", "trace", "trace-child"])
def test_a_model_scripted_or_traced_whole_is_named_as_torchscript(how):
    """A model scripted whole was an AttributeError (its _modules is TorchScript's, with no
    .get), a traced one a KeyError ('_parameters'): summary, the report's summary and the
    explorer failed with a traceback. Truth: the type torch.jit gives."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    x = torch.zeros(1, 3, 8, 8)
    model = {
        "script": lambda: torch.jit.script(net),
        "trace": lambda: torch.jit.trace(net, x),
        "trace-child": lambda: nn.Sequential(nn.ReLU(), torch.jit.trace(net, x)),
    }[how]()
    name = "1" if how == "trace-child" else "(the model)"
    kind = type(model[1] if how == "trace-child" else model).__name__
    with pytest.raises(CnnlabError, match=rf"module '{re.escape(name)}' \({kind}\).*TorchScript"):
        summary(model, (3, 8, 8))


class Decoder(nn.Module):
    """A transposed conv (grouped) after a strided conv and a running sum the trace cannot
    follow (torch.renorm of the width), then attention over the positions and an einsum
    of its lost output with itself."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2, groups=4)
        self.att = nn.MultiheadAttention(4, 2, batch_first=True)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.up(torch.renorm(self.down(x), 2, 3, 1.0)).flatten(2).transpose(1, 2)
        t, _ = self.att(t, t, t)
        weights = torch.einsum("bnc,bmc->bnm", t, t).softmax(-1)
        return self.fc((weights @ t).mean(1))


def test_a_transposed_conv_counts_as_torchinfo_counts_a_conv_and_a_lost_field_is_named_once():
    model = Decoder().eval()
    ours, theirs = summary(model, (3, 16, 16)), torchinfo.summary(model, (1, 3, 16, 16), verbose=0)
    assert ours.total_params == theirs.total_params == sum(p.numel() for p in model.parameters())
    # torchinfo counts none of the attention (a module with a child its forward never calls):
    # its q, k, v and out projections, (E·E + E) each per token, 16×16 tokens of E = 4
    assert ours.total_macs == theirs.total_mult_adds + 4 * (4 * 4 + 4) * 16 * 16
    up = next(r for r in ours.rows if r.name == "up")
    assert up.macs == model.up.weight.numel() * 16 * 16 + 4 * 16 * 16  # weight, bias per output
    lost = [w for w in ours.warnings if w.code == "unfollowed"]
    assert len(lost) == 1 and "torch.renorm" in lost[0].message  # not also the einsum
    assert "3 row(s) after it have none (up, att, fc)" in lost[0].message


def test_a_field_lost_in_the_models_own_code_names_the_model_or_no_row():
    """A running sum in the model's forward: its output is the model's own row, "(model)"; in a
    side output (the second of a tuple) it reaches no row, and the lint says so."""

    class Head(nn.Module):
        def __init__(self, side: bool) -> None:
            super().__init__()
            self.conv, self.side = nn.Conv2d(1, 4, 3), side

        def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
            y = self.conv(x)
            energy = torch.renorm(y, 2, 3, 1.0).square().sum((2, 3))
            return (y.mean((2, 3)), energy) if self.side else energy

    for side, said in ((False, "1 row(s) after it have none ((model))"), (True, "reaches no")):
        (lost,) = [w for w in summary(Head(side), (1, 8, 8)).warnings if w.code == "unfollowed"]
        assert lost.message.startswith(
            "the trace cannot follow the receptive field through torch.renorm"
        )
        assert said in lost.message


def test_no_hook_runs_during_a_summary_not_even_a_global_one():
    """The trace runs a copy whose modules run no hook: the model's own are left behind and
    torch's global module hooks (a profiler's) do not see the meta tensors either."""
    model = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), nn.Flatten())
    seen = []
    handles = [
        nn.modules.module.register_module_forward_hook(lambda m, i, o: seen.append(m)),
        nn.modules.module.register_module_forward_pre_hook(lambda m, i: seen.append(m)),
        model[0].register_forward_hook(lambda m, i, o: seen.append(m)),
    ]
    try:
        rows = summary(model, (1, 6, 6)).rows
    finally:
        for handle in handles:
            handle.remove()
    assert seen == [] and [r.name for r in rows] == ["0.0", "0.1", "1"]
