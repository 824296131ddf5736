"""Explaining models as people write them: a frozen backbone run under torch.no_grad() (kept
by explain's fast copy, told apart from vanishing gradients by gradient flow), a
block called once per image in a loop, float64 images on float32 weights, a decoder branch
the logits do not read, a forward that autocasts. Truth: plain autograd and Captum on the
same model."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from cnnlab.errors import ExplainError
from cnnlab.explain import gradcam, saliency
from cnnlab.inspect import inference_copy
from tiny_nets import outputs

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


class FrozenBackbone(nn.Module):
    """A frozen feature extractor and a trained linear head, as in transfer learning: every map
    of the image lies inside the backbone."""

    def __init__(self, no_grad: bool = True):
        super().__init__()
        self.no_grad = no_grad
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        with torch.set_grad_enabled(not self.no_grad and torch.is_grad_enabled()):
            f = self.backbone(x)
        return self.head(f.mean((2, 3)))


def test_grad_cam_inside_a_no_grad_backbone_says_why_and_how_to_freeze_instead():
    """It said 'the logits do not depend on layer 'backbone'; choose another layer' for the
    default layer, and there is no other: the user tried one layer after another."""
    torch.manual_seed(0)
    model, x = FrozenBackbone().eval(), torch.randn(2, 1, 8, 8)
    _, seen = outputs(model.backbone, lambda: model(x.requires_grad_(True)))
    assert not seen[0].requires_grad  # autograd: no gradient reaches the backbone's output
    with pytest.raises(ExplainError, match=r"'backbone' through autograd.*torch\.no_grad\(\)"):
        gradcam(model, x.detach())
    # the fix it gives: the same weights frozen with requires_grad_(False), no torch.no_grad()
    fixed = FrozenBackbone(no_grad=False).eval()
    fixed.load_state_dict(model.state_dict())
    fixed.backbone.requires_grad_(False)
    x = x.detach()
    t = fixed(x).argmax(1)
    ref = LayerGradCam(fixed, fixed.backbone).attribute(x, t, relu_attributions=True)
    ref = LayerAttribution.interpolate(ref, (8, 8), interpolate_mode="bilinear")[:, 0]
    ref = ref / ref.amax((1, 2), keepdim=True)
    assert torch.allclose(gradcam(fixed, x), ref, atol=1e-5)


class PerImageLoop(nn.Module):
    """A block called once per image, in a Python loop over the batch (a model written for
    images of different sizes, or ported from per-sample code)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.stem(x)
        h = torch.cat([self.block(h[i : i + 1]) for i in range(x.shape[0])])
        return self.fc(h.mean((2, 3)))


def test_the_default_probe_leaves_out_a_block_called_once_per_image():
    """linear_probe's default layers held `block`, whose last call holds one image: the probe
    failed on its own choice ('gives 1 rows for 6 images'). Truth: a plain forward hook."""
    from cnnlab.explain import linear_probe
    from cnnlab.explain.probe import default_probe_layers

    torch.manual_seed(0)
    model, x, y = PerImageLoop().eval(), torch.randn(6, 1, 8, 8), torch.arange(6) % 3
    rows = []
    hook = model.block.register_forward_hook(lambda m, i, o: rows.append(len(o)))
    model(x)
    hook.remove()
    assert rows == [1] * 6  # six calls of one image each
    assert default_probe_layers(model, x) == ["stem.0", "stem.1", "fc"]  # Sequentials opened
    assert set(linear_probe(model, (x, y), (x, y), epochs=1)) == {"input", "stem.0", "stem.1", "fc"}
    with pytest.raises(ExplainError, match="'block' gives 1 rows for 6 images.*once per image"):
        linear_probe(model, (x, y), (x, y), layers=["block"], epochs=1)


def test_float64_images_on_float32_weights_are_told_their_dtype_not_channels_and_size():
    """A float64 batch (from NumPy) was told to 'give images with the channels and size the
    model was trained on', which they had. Truth: torch's own refusal, and the fix works."""
    from cnnlab.explain import saliency

    model, x = FrozenBackbone(no_grad=False).eval(), torch.randn(2, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="double"):
        model(x)
    with pytest.raises(ExplainError, match=r"float64 images.*x\.to\(torch\.float32\)") as said:
        saliency(model, x)
    assert "channels and size" not in str(said.value)
    assert saliency(model, x.to(torch.float32)).shape == (2, 8, 8)


SIDE_BRANCH_FILE = """
from torch import nn


class WithDecoder(nn.Module):
    '''A classifier that also reconstructs its input, kept for a training loss.'''

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(8, 4, 2, stride=2), nn.ReLU(),
                                     nn.Conv2d(4, 1, 3, padding=1))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x):
        h = self.encoder(x)
        self.reconstruction = self.decoder(h)
        return self.head(h)


def make():
    return WithDecoder()
"""


def test_the_default_grad_cam_layer_is_a_map_the_logits_are_computed_from(tmp_path):
    """The decoder's maps come last in forward order and the logits do not depend on them:
    explain, the report's Grad-CAM and the explorer's prediction failed with 'the logits do
    not depend on layer 'decoder''. Truth: autograd, and Captum at the encoder."""
    from PIL import Image

    from cnnlab.cli import main
    from cnnlab.inspect import default_layer, spatial_layers
    from cnnlab.report.sources import Budget, Sources
    from cnnlab.train.rundir import load_run
    from tiny_nets import imported_run

    run_dir = imported_run(tmp_path, SIDE_BRANCH_FILE, data="digits", input_shape=(1, 8, 8))
    model, x = load_run(run_dir).model.eval(), torch.randn(3, 1, 8, 8)
    logits = model(x.requires_grad_(True))
    (unused,) = torch.autograd.grad(logits.sum(), [model.reconstruction], allow_unused=True)
    assert unused is None  # autograd: no gradient from the logits to the decoder
    x = x.detach()
    assert spatial_layers(model, x)[-1] == "decoder"  # a map of the image all the same
    assert default_layer(model, x) == "encoder"
    t = model(x).argmax(1)
    ref = LayerGradCam(model, model.encoder).attribute(x, t, relu_attributions=True)
    ref = LayerAttribution.interpolate(ref, (8, 8), interpolate_mode="bilinear")[:, 0]
    ref = ref / ref.amax((1, 2), keepdim=True).clamp_min(1e-12)
    assert torch.allclose(gradcam(model, x), ref, atol=1e-5)
    Image.new("L", (8, 8), 128).save(tmp_path / "x.png")
    assert main(["explain", str(run_dir), str(tmp_path / "x.png"), "--out", str(tmp_path)]) == 0
    run = load_run(run_dir)
    assert Sources(run_dir, run, None, Budget()).gradcam_layer == "encoder"


class Autocasting(nn.Module):
    """Blocks run under autocast inside forward, for speed, as people add it: the maps are
    bfloat16, the logits float32."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = self.body(x)
        return self.head(h.float().mean((2, 3)))


def test_grad_cam_of_a_forward_that_autocasts_is_float32_and_overlays():
    """The map was bfloat16, and overlay (numpy) refused it: `cnnlab explain` ended in a
    TypeError traceback, the report said 'Not shown: TypeError'. Truth: the Grad-CAM formula
    in float64 on the bfloat16 activations and gradients plain hooks read."""
    from cnnlab.explain import overlay

    torch.manual_seed(0)
    model, x = Autocasting().eval(), torch.randn(2, 1, 8, 8)
    logits, got = outputs(model.body, lambda: model(x))
    t = logits.argmax(1)
    (grads,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), got)
    acts, grads = got[0].double(), grads.double()
    assert got[0].dtype == torch.bfloat16
    cam = torch.relu((grads.mean((2, 3), keepdim=True) * acts).sum(1, keepdim=True))
    cam = nn.functional.interpolate(cam, size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    cam = cam / cam.amax((1, 2), keepdim=True)
    ours = gradcam(model, x)
    assert ours.dtype == torch.float32
    assert torch.allclose(ours.double(), cam, atol=1e-5)
    assert overlay(x[0], ours[0].bfloat16()).shape == (3, 8, 8)  # a bfloat16 map too


# Explaining a model whose forward cuts the gradient (`with torch.no_grad():` around a
# frozen backbone, a common fine-tuning pattern).


class _FrozenBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(4, 3))  # fmt: skip

    def forward(self, x):
        with torch.no_grad():
            f = self.backbone(x)
        return self.head(f)


def test_the_fast_copy_keeps_a_forwards_no_grad_block():
    """torch.fx traced the forward without its `torch.no_grad()` block, so saliency and
    Grad-CAM ran on a copy through which gradients flowed where the model's do not: maps
    of another function, where Captum and autograd refuse. Truth: autograd on the model."""
    model = _FrozenBackbone().eval()
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    copy = inference_copy(model)
    grad_of = lambda m: torch.autograd.grad(m(x).sum(), x, allow_unused=True)[0]  # noqa: E731
    assert grad_of(model) is None
    assert grad_of(copy) is None  # the copy cuts where the model cuts
    with pytest.raises(ExplainError, match="no_grad"):
        saliency(model, x.detach())
    with pytest.raises(ExplainError, match="do not depend on layer 'backbone.4'"):
        gradcam(model, x.detach(), layer="backbone.4")
    cam = gradcam(model, x.detach(), layer="head.1")  # after the cut: explained as usual
    assert cam.shape == (2, 8, 8) and cam.amax() == 1


def test_gradient_flow_tells_layers_cut_off_by_the_forward_from_vanishing_ones():
    """A backbone under torch.no_grad() gets no gradient at all (autograd gives None, not a
    small number): diagnose called it 'vanishing-gradients: first layer's gradient is 0x the
    last's' and advised ReLU, BatchNorm and residuals. It now names the layers no gradient
    path reaches, and judges vanishing on the layers that are reached. Truth: autograd's
    None for the backbone's weights."""
    from cnnlab.diagnose import findings, gradient_flow

    model = _FrozenBackbone().eval()
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    loss = nn.functional.cross_entropy(model(x), y)
    cut = [n for n, m in model.named_modules() if hasattr(m, "weight") and m.weight is not None]
    grads = torch.autograd.grad(loss, [model.get_submodule(n).weight for n in cut],
                                allow_unused=True)  # fmt: skip
    unreached = {n for n, g in zip(cut, grads, strict=True) if g is None}
    assert unreached == {"backbone.0", "backbone.1", "backbone.3"}
    flow = gradient_flow(model, (x, y))
    assert {l.name for l in flow.layers if not l.reached} == unreached
    assert not flow.vanishing and not flow.no_gradient
    found = findings(flow=flow)
    codes = [f.code for f in found]
    assert "vanishing-gradients" not in codes and "cut-off" in codes
    (cutoff,) = [f for f in found if f.code == "cut-off"]
    assert "backbone.0" in cutoff.message and "no_grad" in cutoff.fix
