"""Layers that return a tuple whose first item is their map, as Hugging Face's do
(`PoolFormerLayer` returns `(output,)`): Grad-CAM's default layer is the last block's output,
not the shared `drop_path` called inside it, whose last call is the residual branch before
the sum. Truth: Grad-CAM written out with autograd on the block's own output."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

from cnnlab.explain import ExplainError, feature_maps, gradcam
from cnnlab.explorer import create_app
from cnnlab.inspect import default_layer
from cnnlab.inspect.hooks import output_tensor, with_output
from cnnlab.train.rundir import Run


class Block(nn.Module):
    """x + drop_path(mix(x)), then + drop_path(mlp(.)), returned as a 1-tuple, as PoolFormer."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.mlp = nn.Sequential(nn.Conv2d(c, 2 * c, 1), nn.GELU(), nn.Conv2d(2 * c, c, 1))
        self.drop_path = nn.Identity()  # one module, called for both branches

    def forward(self, x):
        x = x + self.drop_path(self.mix(x))
        return (x + self.drop_path(self.mlp(x)),)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList([Block(8), Block(8)])
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)[0]
        return self.fc(x.mean((2, 3)))


def by_hand(model: Net, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    seen = {}
    hook = model.blocks[1].register_forward_hook(lambda m, a, out: seen.update(a=out[0]))
    logits = model(x)
    hook.remove()
    a = seen["a"]  # (B, K, h, w)
    (g,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), a)
    cam = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return cam / cam.amax((1, 2), keepdim=True)


def test_grad_cam_defaults_to_the_last_blocks_tuple_output():
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(3, 1, 12, 12)
    assert default_layer(model, x) == "blocks.1"  # it was blocks.1.drop_path, the MLP branch
    with torch.no_grad():
        target = model(x).argmax(1)
    torch.testing.assert_close(gradcam(model, x), by_hand(model, x, target), atol=1e-5, rtol=1e-4)


def test_a_tuple_layers_feature_map_is_its_first_item():
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        truth = model.blocks[0](model.stem(x))[0]
    torch.testing.assert_close(feature_maps(model, x, "blocks.0")["blocks.0"], truth)


class Backbone(nn.Module):
    """timm's features_only style: a list of maps, shallow first; the head reads the last."""

    def __init__(self) -> None:
        super().__init__()
        self.s1 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.s2 = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, x):
        shallow = self.s1(x)
        return [shallow, self.s2(shallow)]


class ListNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = Backbone()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        feats = self.backbone(x)
        return self.fc(feats[-1].mean((2, 3)))


def test_a_backbone_returning_a_list_of_maps_is_not_read_by_its_shallow_map():
    """A list of several maps stands for none of them: Grad-CAM's default is the deep map
    (backbone.s2); reading the backbone as its first map, Grad-CAM raised that the logits do
    not depend on 'backbone'. Truth: Grad-CAM written out with autograd on backbone.s2."""
    torch.manual_seed(0)
    model = ListNet().eval()
    x = torch.randn(3, 1, 12, 12)
    assert default_layer(model, x) == "backbone.s2"
    with torch.no_grad():
        target = model(x).argmax(1)
    seen = {}
    hook = model.backbone.s2.register_forward_hook(lambda m, a, out: seen.update(a=out))
    logits = model(x)
    hook.remove()
    (g,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), seen["a"])
    cam = F.relu((g.mean((2, 3), keepdim=True) * seen["a"]).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(gradcam(model, x), cam / cam.amax((1, 2), keepdim=True))


def test_the_explorer_predicts_for_a_backbone_returning_a_list():
    """The explorer's map layers ended in 'backbone' (its shallow map), the page's default
    Grad-CAM layer: every POST /api/predict answered 400."""
    torch.manual_seed(0)
    model = ListNet().eval()
    config = {"data": None, "classes": ["a", "b", "c"], "mean": [0.5], "std": [0.25]}
    run = Run(None, None, model, {**config, "input_shape": [1, 12, 12]})
    client = TestClient(create_app(run))
    spatial = list(client.get("/api/model").json()["spatial"])
    assert spatial[-1] == "backbone.s2" and "backbone" not in spatial
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 12), "u1")).save(buffer, "PNG")
    upload = {"image": ("n.png", buffer.getvalue(), "image/png")}
    sent = client.post("/api/predict", files=upload, data={"layer": spatial[-1]})
    assert sent.status_code == 200, sent.text
    sent = client.post("/api/predict", files=upload)  # the default layer
    assert sent.status_code == 200, sent.text


def test_what_a_tuple_output_stands_for():
    """Truth: the rule written out. An HF attention layer's (tokens, attentions) is its
    tokens; two items of one rank (maps of two stages) are neither."""
    tokens, attn = torch.zeros(2, 5, 8), torch.zeros(2, 4, 5, 5)
    shallow, deep = torch.zeros(2, 4, 8, 8), torch.zeros(2, 8, 4, 4)
    assert output_tensor((tokens, attn)) is tokens
    assert output_tensor((deep,)) is deep and output_tensor([deep]) is deep
    assert output_tensor([shallow, deep]) is None and output_tensor((shallow, deep)) is None
    assert output_tensor((deep, None)) is deep and output_tensor((None, deep)) is None
    assert output_tensor((tokens, tokens, (2, 2))) is tokens  # one tensor twice (FocalNet)
    clone = tokens.clone()
    replaced = with_output((tokens, tokens, (2, 2)), clone)  # what a hook hands on: both
    assert replaced[0] is clone and replaced[1] is clone and replaced[2] == (2, 2)


def test_asking_for_a_list_of_maps_says_why_it_has_none():
    """Its maps are its children's: the message names the rule, not 'no tensor first'."""
    model = ListNet().eval()
    rule = r"neither a tensor nor a tuple/list whose first item is the only tensor of its rank"
    with pytest.raises(ExplainError, match=rule):
        feature_maps(model, torch.randn(2, 1, 12, 12), "backbone")
