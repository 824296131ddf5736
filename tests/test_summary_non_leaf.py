"""A module attribute holding a tensor autograd computed (a cache of values derived from the
weights, filled by a forward run with gradients on) is copied detached: torch refuses to
deepcopy a tensor that is not a graph leaf, and the user's model is left as it was."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torchinfo
from torch import nn

from cnnlab.design.summary import summary


class Cached(nn.Module):
    """A layer whose forward caches a tensor computed from its weight, in a dict, a list and
    an object's attribute (as Hugging Face's LeViT caches its attention biases)."""

    def __init__(self, real: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.cache: dict[str, torch.Tensor] = {}
        self.history: list[torch.Tensor] = []
        self.box = type("Box", (), {})()
        self.real = real  # a forward meta cannot run (`.item()`): the real trace's copy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.conv.weight.abs().mean()
        self.cache.setdefault("scale", scale)
        self.history.append(scale)
        self.box.scale = scale
        if self.real:
            float(x.sum().item())
        return self.conv(x) * self.cache["scale"]


@pytest.mark.parametrize("real", [False, True])
def test_non_leaf_attribute_tensors_are_copied_and_left_as_they_were(real):
    """Truth: torch's forward shapes, the parameter count, torchinfo's MACs; the user's
    cache holds the same tensor objects, still with their grad_fn."""
    model = nn.Sequential(Cached(real), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, n=name: shapes.update({n: out.shape[1:]}))
        for name, m in model.named_modules()
    ]
    model(torch.randn(1, 3, 16, 16))  # fills the caches, gradients on: torch's shapes
    for hook in hooks:
        hook.remove()
    cache, history, boxed = dict(model[0].cache), list(model[0].history), model[0].box.scale
    assert cache["scale"].grad_fn is not None
    got = summary(model, (3, 16, 16))
    assert [r.output_shape for r in got.rows] == [tuple(shapes[r.name]) for r in got.rows]
    assert [r.name for r in got.rows] == ["0.conv", "0", "1", "2", "3"]
    assert got.total_params == sum(p.numel() for p in model.parameters())
    model[0].real = False  # torchinfo runs the forward with real data
    theirs = torchinfo.summary(model, (1, 3, 16, 16), verbose=0)
    assert got.total_macs == theirs.total_mult_adds
    assert model[0].cache == cache and model[0].cache["scale"].grad_fn is not None
    assert model[0].history[: len(history)] == history and model[0].box is not None
    assert boxed.grad_fn is not None


def test_hugging_face_levit_after_a_forward_is_summarized_as_before_it():
    """LeViT's attention_bias_cache after an eval-mode forward with gradients on: the copy
    raised 'Only Tensors created explicitly by the user (graph leaves) support the deepcopy
    protocol'. The summary equals the one after `m.train(); m.eval()` (which clears the
    cache), and the user's cache is left as it was."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_summary_zoo import make

    model, size = make("hf-levit")
    model(torch.randn(1, *size))
    caches = {
        name: dict(m.attention_bias_cache)
        for name, m in model.named_modules()
        if getattr(m, "attention_bias_cache", None)
    }
    assert caches and all(t.grad_fn is not None for c in caches.values() for t in c.values())
    got = summary(model, input_size=size)
    after = {n: m.attention_bias_cache for n, m in model.named_modules() if n in caches}
    assert after == caches
    model.train()
    model.eval()
    assert got == summary(model, input_size=size)
    assert got.total_params == sum(p.numel() for p in model.parameters())
