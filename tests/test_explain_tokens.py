"""Grad-CAM on vision transformers: a block's tokens (B, N, C) read as the map (B, C, h, w) of
their patches, the leading class, distillation and register tokens dropped, on the grid of the
model's own patch embedding (pytorch-grad-cam's `reshape_transform`). Truth: Captum's
LayerGradCam at a module the test puts in the model, whose output is that map, built here by
plain torch ops from the tokens the model computes. Grad-CAM's default on a ViT is the input of
its last attention, not the patch embedding (a map of patches before any block): after the last
attention no patch token gets a gradient where the head reads the class token."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cnnlab import explain
from cnnlab.errors import ExplainError
from cnnlab.inspect import default_layer
from test_summary_zoo import make

captum = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


class Logits(nn.Module):
    """A zoo model's logits alone (a Hugging Face output's `.logits`, MONAI ViT's first item)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return out.logits if hasattr(out, "logits") else out[0]


class PatchMap(nn.Module):
    """`inner` whose output tokens pass through `self.map` as the (B, C, h, w) map of the last
    h·w (the patches) and are put back: what Captum's LayerGradCam reads at `self.map`."""

    def __init__(self, inner: nn.Module, h: int, w: int):
        super().__init__()
        self.inner, self.h, self.w = inner, h, w
        self.map = nn.Identity()

    def forward(self, *args, **kwargs):
        t = self.inner(*args, **kwargs)  # (B, N, C)
        lead, patches = t[:, : -self.h * self.w], t[:, -self.h * self.w :]
        grid = torch.stack([patches[:, i * self.w : (i + 1) * self.w] for i in range(self.h)], 1)
        m = self.map(grid.permute(0, 3, 1, 2))  # (B, C, h, w): m[b, c, i, j] = patch i·w + j
        return torch.cat([lead, m.permute(0, 2, 3, 1).reshape(len(t), -1, t.shape[2])], 1)


# zoo name -> (Grad-CAM's default layer, inside Logits; the patch grid's side)
VITS = {
    "hf-vit": ("net.vit.layers.1.layernorm_before", 8),
    "hf-dinov2-registers": ("net.dinov2_with_registers.encoder.layer.1.norm1", 8),
    "monai-vit": ("net.blocks.1.norm1", 4),
    "hf-deit-distilled": ("net.deit.layers.1.layernorm_before", 8),
    "hf-beit": ("net.beit.layers.1.layernorm_before", 8),
}


def _model(name: str) -> tuple[nn.Module, torch.Tensor]:
    pytest.importorskip("monai" if name.startswith("monai") else "transformers")
    model, shape = make(name)
    torch.manual_seed(1)
    return Logits(model).eval(), torch.randn(3, *shape)


def captum_patch_map(
    model: nn.Module, x: torch.Tensor, layer: str, side: int, method
) -> torch.Tensor:
    """Captum's Grad-CAM at `layer`'s patch map, upsampled and scaled as gradcam's."""
    model = copy.deepcopy(model)
    parent, _, child = layer.rpartition(".")
    wrapped = PatchMap(model.get_submodule(layer), side, side)
    setattr(model.get_submodule(parent), child, wrapped)
    t = model(x).argmax(1)
    ref = method(model, wrapped.map).attribute(x, target=t, relu_attributions=True)
    ref = captum.LayerAttribution.interpolate(ref, x.shape[-2:], interpolate_mode="bilinear")
    ref = ref[:, 0]
    return ref / ref.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]


@pytest.mark.parametrize("name", list(VITS))
def test_grad_cam_at_a_vit_block_equals_captums_at_its_patch_map(name):
    model, x = _model(name)
    layer, side = VITS[name]
    ref = captum_patch_map(model, x, layer, side, captum.LayerGradCam)
    got = explain.gradcam(model, x, layer=layer)
    assert got.shape == x.shape[:1] + x.shape[2:]
    assert bool((ref.amax((1, 2)) > 0).all())  # no blank map compared
    assert (got - ref).abs().max().item() <= 1e-6


@pytest.mark.parametrize("name", ["hf-vit", "hf-dinov2-registers", "monai-vit"])
def test_the_default_layer_is_the_last_attentions_input_not_the_patch_embedding(name):
    model, x = _model(name)
    layer, side = VITS[name]
    assert default_layer(model, x) == layer
    got = explain.gradcam(model, x)  # the default
    ref = captum_patch_map(model, x, layer, side, captum.LayerGradCam)
    assert (got - ref).abs().max().item() <= 1e-6


def test_the_final_norm_gets_no_patch_gradient_where_the_head_reads_the_class_token():
    """Why the default is not the last token layer: Grad-CAM there is a blank map."""
    model, x = _model("hf-vit")
    assert not explain.gradcam(model, x, layer="net.vit.layernorm").any()


def test_grad_cam_pp_at_a_vit_block_equals_the_formula_on_captums_map():
    """Grad-CAM++ weighs the same (B, C, h, w) map. Truth: its formula (Chattopadhay et al.
    2018, eq. 19) on the map and gradient a plain hook reads at the test's PatchMap."""
    model, x = _model("hf-dinov2-registers")
    layer, side = VITS["hf-dinov2-registers"]
    wrapped_model = copy.deepcopy(model)
    parent, _, child = layer.rpartition(".")
    wrapped = PatchMap(wrapped_model.get_submodule(layer), side, side)
    setattr(wrapped_model.get_submodule(parent), child, wrapped)
    seen = []
    wrapped.map.register_forward_hook(lambda m, i, o: seen.append(o))
    logits = wrapped_model(x)
    t = logits.argmax(1)
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), seen)
    a = seen[0].detach()
    g2, g3 = g.pow(2), g.pow(3)
    denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g3
    alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, 1.0), 0.0)
    w = (alpha * g.clamp(min=0)).sum((2, 3))
    cam = torch.relu((w[:, :, None, None] * a).sum(1, keepdim=True))
    ref = nn.functional.interpolate(cam, x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    ref = ref / ref.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    got = explain.gradcam(model, x, layer=layer, method="gradcam++")
    assert (got - ref).abs().max().item() <= 1e-6


class TokenPool(nn.Module):
    """(B, N, C) -> (B, 5, C): 5 tokens, each a learned mix of the N."""

    def __init__(self, n: int):
        super().__init__()
        self.mix = nn.Linear(n, 5)

    def forward(self, tokens):
        return self.mix(tokens.transpose(1, 2)).transpose(1, 2)


class FiveTokens(nn.Module):
    """A 4×4 patch map as 16 tokens, then 5 tokens mixed from them (`pool`)."""

    def __init__(self):
        super().__init__()
        self.patches = nn.Conv2d(3, 8, 4, stride=4)  # 16×16 image -> (B, 8, 4, 4)
        self.pool = TokenPool(16)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        tokens = self.patches(x).flatten(2).transpose(1, 2)  # (B, 16, 8)
        return self.head(self.pool(tokens).mean(1))


def test_tokens_without_a_patch_grid_are_refused_naming_the_layer_and_its_shape():
    """The pool's tokens (B, 5, 8): 5 is no map's h·w, nor that of a grid merged s×s from the
    4×4 map (`merged_grid`)."""
    model, x = FiveTokens().eval(), torch.randn(2, 3, 16, 16)
    with pytest.raises(ExplainError, match=r"layer 'pool' gives tokens \(B, 5, 8\) whose "
                       r"patch grid is unknown"):  # fmt: skip
        explain.gradcam(model, x, layer="pool")
