"""Layers that return a tuple whose first item is their map, as Hugging Face's do
(`PoolFormerLayer` returns `(output,)`): Grad-CAM's default layer is the last block's output,
not the shared `drop_path` called inside it, whose last call is the residual branch before
the sum. Truth: Grad-CAM written out with autograd on the block's own output."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.explain import feature_maps, gradcam
from cnnlab.inspect import default_layer


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
