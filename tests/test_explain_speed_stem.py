"""A stem conv's input gradient as one conv and a pixel shuffle (explain/stem_grad.py).
Truth: torch's own convolution_backward (float64) for the formula, Captum's Saliency for the
maps, plain autograd for what the hooks must leave alone."""

from __future__ import annotations

import pytest
import torch
from captum.attr import Saliency
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.checkpoint import checkpoint

from cnnlab.explain import saliency, smoothgrad, stem_grad
from cnnlab.explain.stem_grad import conv_input_grad, stem_gradients


@st.composite
def convs(draw):
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    ph, pw = draw(st.integers(0, kh)), draw(st.integers(0, kw))
    s = draw(st.integers(2, 4))
    h, w = draw(st.integers(max(1, kh - 2 * ph), 19)), draw(st.integers(max(1, kw - 2 * pw), 19))
    return draw(st.integers(1, 4)), draw(st.integers(1, 6)), (kh, kw), s, (ph, pw), (h, w)


@settings(max_examples=80, deadline=None)
@given(convs())
def test_conv_input_grad_is_torchs(args):
    c, o, k, s, pad, size = args
    torch.manual_seed(0)
    x = torch.randn(2, c, *size, dtype=torch.float64)
    w = torch.randn(o, c, *k, dtype=torch.float64)
    gy = torch.randn_like(torch.nn.functional.conv2d(x, w, stride=s, padding=pad))
    ref = torch.ops.aten.convolution_backward(
        gy, x, w, None, [s, s], list(pad), [1, 1], False, [0, 0], 1, [True, False, False]
    )[0]
    torch.testing.assert_close(conv_input_grad(gy, w, x.shape, s, pad), ref)


def stem_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 7, 2, 3, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),  # in place on the stem's output
        nn.MaxPool2d(3, 2, 1),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).eval()


@pytest.mark.parametrize("channels_last", [None, False])
def test_saliency_uses_it_and_equals_captum(monkeypatch, channels_last):
    model, x = stem_net(), torch.randn(3, 3, 33, 31)
    t = model(x).argmax(1)
    expected = Saliency(model).attribute(x.clone(), target=t, abs=True).amax(1)
    calls = []
    monkeypatch.setattr(
        stem_grad, "conv_input_grad", lambda *a: calls.append(1) or conv_input_grad(*a)
    )
    got = saliency(model, x, channels_last=channels_last)
    assert calls == [1]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert all(not m._forward_hooks for m in model.modules())


def test_smoothgrad_unchanged_by_it(monkeypatch):
    model, x = stem_net(), torch.randn(2, 3, 20, 20)
    got = smoothgrad(model, x, n=3, seed=1)
    monkeypatch.setattr(stem_grad, "_eligible", lambda m: False)  # torch's own backward
    torch.testing.assert_close(got, smoothgrad(model, x, n=3, seed=1), atol=1e-6, rtol=1e-5)


def test_trainable_weights_keep_plain_autograd_and_hooks_go_on_error():
    conv = nn.Conv2d(3, 4, 3, 2, 1)  # weight requires grad: not taken over
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    with stem_gradients(conv):
        conv(x).square().sum().backward()
    assert conv.weight.grad is not None and x.grad is not None
    conv.requires_grad_(False)
    with pytest.raises(RuntimeError, match="boom"), stem_gradients(conv):
        assert conv._forward_hooks
        raise RuntimeError("boom")
    assert not conv._forward_hooks


class CheckpointedStem(nn.Module):
    """The stem inside an activation checkpoint: under use_reentrant=True its forward runs
    without autograd and the backward recomputes it (the hook then sees the recompute)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Conv2d(8, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.reentrant: bool | None = None  # None: no checkpoint

    def forward(self, x):
        if self.reentrant is None:
            return self.head(self.stem(x))
        y = checkpoint(self.stem, x, use_reentrant=self.reentrant)
        return self.head(y)


@pytest.mark.parametrize("reentrant", [True, False])
def test_stem_inside_a_checkpoint_equals_captum_without_it(reentrant):
    torch.manual_seed(0)
    model, x = CheckpointedStem().eval(), torch.randn(2, 3, 20, 20)
    t = model(x).argmax(1)
    expected = Saliency(model).attribute(x.clone(), target=t, abs=True).amax(1)
    model.reentrant = reentrant
    torch.testing.assert_close(saliency(model, x), expected, atol=1e-6, rtol=1e-5)


def test_a_stem_with_a_hook_that_changes_its_output_keeps_torchs_gradient():
    model, x = stem_net(), torch.randn(2, 3, 32, 32)
    scale = torch.rand(1, 8, 16, 16, generator=torch.Generator().manual_seed(1)) * 3
    model[0].register_forward_hook(lambda m, args, out: out * scale)  # runs before the stem's
    t = model(x).argmax(1)
    expected = Saliency(model).attribute(x.clone(), target=t, abs=True).amax(1)
    # the stem's backward skipped the hook's scale: off by half the map's peak
    torch.testing.assert_close(saliency(model, x), expected, atol=1e-6, rtol=1e-5)
