"""Explaining a model whose forward cuts the gradient (`with torch.no_grad():` around a
frozen backbone, a common fine-tuning pattern)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import ExplainError
from cnnlab.explain import gradcam, saliency
from cnnlab.inspect import inference_copy


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
