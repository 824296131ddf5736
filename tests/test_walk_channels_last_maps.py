"""Grad-CAM, Grad-CAM++ and feature maps at a layer that holds its map channels last: a
ConvNeXt block's LayerNorm, Linear and GELU on (B, H, W, C), between its permutes. Each is read
as the (B, C, H, W) map it is (it was refused: "holds its channels last ... not a (B, C, H, W)
map"). Truth: Captum's LayerGradCam on a twin of the model whose layer hands its map on
channels first (a wrapper module that permutes it, and back for the next layer); the Grad-CAM++
formula on the activation and the gradient torch.autograd.grad gives, permuted by torch; the
activation a plain forward hook sees, permuted by torch. End to end: `cnnlab explain`,
`cnnlab visualize --maps` and the report's feature maps on a run trained from a model file."""

from __future__ import annotations

import copy
import re
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from PIL import Image
from torch import nn

from cnnlab import explain
from cnnlab.explain.features import normalize_maps
from cnnlab.inspect import default_layer, spatial_calls
from tiny_nets import noise_png, outputs

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONVNEXT = """
import torch
from torch import nn


class Block(nn.Module):
    # ConvNeXt's block: depthwise conv, permute to (B, H, W, C), LayerNorm, Linear, GELU,
    # Linear, layer scale, permute back, residual
    def __init__(self, width=8, hidden=32):
        super().__init__()
        self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.norm = nn.LayerNorm(width)
        self.pw1, self.act, self.pw2 = nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width)
        self.gamma = nn.Parameter(torch.full((width,), 0.5))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.gamma * self.pw2(self.act(self.pw1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 2, stride=2)
        self.stages = nn.Sequential(nn.Sequential(Block()))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)).mean((2, 3)))


def make():
    return Net()
"""

BLOCK = "stages.0.0"
AFTER = {"norm": "pw1", "pw1": "act", "act": "pw2"}  # the layer each one's output goes to


def convnext() -> nn.Module:
    torch.manual_seed(0)
    code = types.ModuleType("convnext_file")
    exec(CONVNEXT, code.__dict__)  # noqa: S102 - the test's own model file
    return code.make().eval()


class Turned(nn.Module):
    """`inner` on its input permuted by `before`, its output permuted by `after`."""

    def __init__(self, inner: nn.Module, before=(0, 1, 2, 3), after=(0, 1, 2, 3)):
        super().__init__()
        self.inner, self.before, self.after = inner, before, after

    def forward(self, y):
        return self.inner(y.permute(*self.before)).permute(*self.after)


def channels_first_twin(model: nn.Module, layer: str) -> tuple[nn.Module, nn.Module]:
    """(a copy of model whose block's `layer` gives (B, C, H, W), the next layer taking it back
    to (B, H, W, C); that wrapped layer): the same function, the map channels first."""
    twin = copy.deepcopy(model)
    block = twin.get_submodule(BLOCK)
    setattr(block, layer, Turned(getattr(block, layer), after=(0, 3, 1, 2)))
    after = AFTER[layer]
    setattr(block, after, Turned(getattr(block, after), before=(0, 2, 3, 1)))
    return twin, getattr(block, layer)


def captum_heat(model: nn.Module, layer: str, x: torch.Tensor, target=None) -> torch.Tensor:
    """Captum's Grad-CAM at the channels-first twin's layer, upsampled and scaled per image
    by its max, as DESIGN.md defines the heatmap."""
    twin, module = channels_first_twin(model, layer)
    with torch.no_grad():
        t = twin(x).argmax(1) if target is None else target
    cam = LayerGradCam(twin, module).attribute(x, t, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear")[:, 0]
    peak = cam.amax((1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-30), 0.0)


def images(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("channels_last", [None, True])  # the model itself, its fast copy
@pytest.mark.parametrize("layer", ["norm", "pw1", "act"])
def test_gradcam_at_a_channels_last_layer_is_captums_at_it_turned_channels_first(
    layer, channels_last
):
    model, x = convnext(), images()
    got = explain.gradcam(model, x, layer=f"{BLOCK}.{layer}", channels_last=channels_last)
    torch.testing.assert_close(got, captum_heat(model, layer, x), atol=1e-5, rtol=0)


def test_gradcam_pp_at_a_channels_last_layer_is_the_formula_on_the_permuted_activation():
    model, x = convnext(), images()
    act = model.get_submodule(f"{BLOCK}.act")
    logits, seen = outputs(act, lambda: model(x))
    t = logits.argmax(1)
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), seen[0])
    a, g = seen[0].detach().permute(0, 3, 1, 2), g.permute(0, 3, 1, 2)  # (B, 32, 8, 8)
    # Chattopadhay et al. 2018, eq. 19 with Y = exp(S): α = g² / (2g² + Σ_ab A_ab g³)
    denom = 2 * g**2 + a.sum((2, 3), keepdim=True) * g**3
    alpha = torch.where(denom != 0, g**2 / torch.where(denom != 0, denom, 1.0), 0.0)
    w = (alpha * g.clamp(min=0)).sum((2, 3))  # (B, 32)
    cam = F.relu((w[:, :, None, None] * a).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    truth = cam / cam.amax((1, 2), keepdim=True)
    assert a.shape[1] == model.get_submodule(f"{BLOCK}.pw1").out_features  # its 32 units
    got = explain.gradcam(model, x, layer=f"{BLOCK}.act", method="gradcam++")
    torch.testing.assert_close(got, truth, atol=1e-5, rtol=0)


def test_feature_maps_of_channels_last_layers_are_their_activations_permuted():
    model, x = convnext(), images(2)
    names = [f"{BLOCK}.{n}" for n in ("dw", "norm", "act", "pw2")]
    truth = {}
    for name in names:
        _, seen = outputs(model.get_submodule(name), lambda: model(x))
        out = seen[0].detach()
        truth[name] = out if name.endswith("dw") else out.permute(0, 3, 1, 2)  # plain torch
    assert truth[f"{BLOCK}.act"].shape == (2, 32, 8, 8)  # 32 hidden units on the 8×8 map
    got = explain.feature_maps(model, x, names)
    for name in names:
        torch.testing.assert_close(got[name], truth[name], atol=0, rtol=0)


class PatchMLP(nn.Module):
    """A ViT's MLP on its tokens (B, N, C): no map of the image, whatever its channels."""

    def __init__(self):
        super().__init__()
        self.patches = nn.Conv2d(1, 6, 4, stride=4)
        self.fc1, self.act = nn.Linear(6, 12), nn.ReLU()
        self.head = nn.Linear(12, 10)

    def forward(self, x):
        return self.head(self.act(self.fc1(self.patches(x).flatten(2).transpose(1, 2))).mean(1))


def test_the_layers_offered_for_maps_are_the_4d_ones_in_either_layout_not_tokens():
    model, x = convnext(), images(2)
    four_d = []  # plain torch: every leaf's output in forward order, 4-D ones kept
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: four_d.append(n) if o.dim() == 4
                                     else None)
             for n, m in model.named_modules() if n and not list(m.children())]  # fmt: skip
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    assert four_d == ["stem", *(f"{BLOCK}.{n}" for n in ("dw", "norm", "pw1", "act", "pw2"))]
    leaves = [name for name in spatial_calls(model, x) if name in four_d]
    assert leaves == four_d  # were stem and dw: the rest "holds its channels last"
    # the default stays the stream the head reads (the block's sum), not a branch's layer
    assert default_layer(model, x) not in four_d[2:]
    tokens = PatchMLP().eval()
    assert spatial_calls(tokens, torch.zeros(2, 1, 8, 8)) == ["patches"]  # (B, N, C): none


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    """`cnnlab train --model file.py:make --data digits --epochs 2`, once for the module."""
    from cnnlab.cli import main

    root = tmp_path_factory.mktemp("convnext")
    (root / "net.py").write_text(CONVNEXT)
    argv = ["train", "--model", f"{root / 'net.py'}:make", "--data", "digits", "--input",
            "1,16,16", "--epochs", "2", "--no-flip", "--no-tta", "--precision", "fp32",
            "--quiet", "--out", str(root / "run")]  # fmt: skip
    assert main(argv) == 0
    return root / "run"


def image_input(run, path) -> tuple[torch.Tensor, torch.Tensor]:
    """(the image as the CLI reads it, uint8 (1, 1, 16, 16); the model's input)."""
    from cnnlab.train.rundir import load_run

    raw = torch.from_numpy(np.array(Image.open(path)))[None, None]  # 16×16 gray: as is
    return raw, load_run(run).preprocess(raw)


def test_explain_at_a_channels_last_layer_draws_captums_map(run, tmp_path, capsys):
    from cnnlab.cli import main
    from cnnlab.train.rundir import load_run

    image = noise_png(tmp_path / "x.png")
    out = tmp_path / "heat"
    layer = f"{BLOCK}.act"
    assert main(["explain", str(run), str(image), "--layer", layer, "--out", str(out)]) == 0
    (written,) = out.glob("*.png")  # was exit 2: "'stages.0.0.act' holds its channels last"
    k = int(re.search(r"_class(\d+)\.png$", written.name).group(1))
    raw, x = image_input(run, image)
    heat = captum_heat(load_run(run).model, "act", x, torch.tensor([k]))[0]
    pic = explain.overlay(raw[0].float() / 255, heat)  # the CLI's drawing, of Captum's map
    pic = pic.repeat_interleave(14, 1).repeat_interleave(14, 2)  # 224 // 16
    truth = (pic.permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
    drawn = np.asarray(Image.open(written)).astype(np.int16)
    assert drawn.shape == truth.shape and np.abs(drawn - truth).max() <= 2
    assert main(["explain", str(run), str(image), "--layer", "head", "--out", str(out)]) == 2
    assert f"needs one of: stem, {BLOCK}.dw, {BLOCK}.norm" in capsys.readouterr().err


def test_visualize_maps_draws_a_channels_last_layers_maps(run, tmp_path, capsys):
    from cnnlab.cli import main
    from cnnlab.train.rundir import load_run

    image = noise_png(tmp_path / "x.png")
    layer = f"{BLOCK}.act"
    figs = tmp_path / "figs"
    argv = ["visualize", str(run), "--maps", str(image), "--out", str(figs)]
    assert main([*argv, "--layers", layer]) == 0  # was exit 2: "holds its channels last"
    _, x = image_input(run, image)
    model = load_run(run).model
    with torch.no_grad():
        _, seen = outputs(model.get_submodule(layer), lambda: model(x))
    maps = seen[0].permute(0, 3, 1, 2)[0]  # (32, 8, 8): torch's permute of the hook's output
    truth = explain.save_grid(normalize_maps(maps), tmp_path / "truth.png")
    drawn = np.asarray(Image.open(figs / f"maps_{layer}.png"))
    np.testing.assert_array_equal(drawn, np.asarray(Image.open(truth)))
    capsys.readouterr()
    assert main(argv) == 0  # every map layer, a ConvNeXt's channels-last ones too
    printed = capsys.readouterr().out
    assert f"maps_{layer}.png" in printed and f"maps_{BLOCK}.norm.png" in printed


def test_the_reports_feature_maps_draw_the_convnext_gelu_as_its_maps(run):
    from cnnlab.report import facts
    from cnnlab.report.sources import Budget, Sources
    from cnnlab.train.rundir import load_run

    loaded = load_run(run)
    src = Sources(run, loaded, None, Budget())
    layer = f"{BLOCK}.act"
    assert layer in src.map_layers  # the block's activation ends it, as a ReLU block's does
    assert set(src.stages) <= {"stem", BLOCK, "stages.0", "stages"}  # the stream, unchanged
    rows = dict(facts._maps(src).layers)
    _, x, _ = src.test
    with torch.no_grad():
        _, seen = outputs(loaded.model.get_submodule(layer), lambda: loaded.model(x[:1]))
    truth = seen[0].permute(0, 3, 1, 2)[0].numpy()  # (32, 8, 8); was (8, 8, 32) as 8 maps
    np.testing.assert_array_equal(rows[src.label(layer)], truth)
