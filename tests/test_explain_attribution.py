"""Saliency, SmoothGrad, Grad-CAM and Grad-CAM++ against independent truths: Captum, the
papers' formulas written out, and the same model without in-place ops."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam, Saliency
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.explain import ExplainError, gradcam, saliency, smoothgrad
from test_explain_models import images, models, resnet_pair

MODELS = models()
LAYERS = {
    # a BasicBlock calls its relu twice: Captum's hook keeps the last call, `relu #2` in cnnlab
    "resnet": [None, "layer1.0.bn2", "layer2.0.bn1", "layer1.0.relu #2", "layer1", "conv1"],
    "functional": [None, "conv1"],
    "plain": [None, "0", "3"],
}


def captum_gradcam(model, x, target, layer_name):
    """LayerGradCam (relu_attributions=True, the paper's ReLU) + bilinear interpolate, then
    ReLU and each image divided by its max."""
    layer = dict(model.named_modules())[layer_name.split(" #")[0]]  # Captum: the last call
    cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear")
    cam = F.relu(cam[:, 0])
    peak = cam.amax((1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp(min=1e-30), cam)


@pytest.mark.parametrize("name", list(MODELS))
def test_saliency_equals_captum(name):
    model, _ = MODELS[name]
    x = images(5, seed=3)
    target = torch.tensor([0, 1, 2, 3, 4])
    expected = Saliency(model).attribute(x, target=target, abs=True).amax(1)
    torch.testing.assert_close(saliency(model, x, target), expected, atol=1e-5, rtol=0)
    predicted = model(x).argmax(1)
    expected = Saliency(model).attribute(x, target=predicted, abs=True).amax(1)
    torch.testing.assert_close(saliency(model, x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("name", "layer"), [(n, l) for n in LAYERS for l in LAYERS[n]])
def test_gradcam_equals_captum_on_the_copy_without_inplace_ops(name, layer):
    """cnnlab on the in-place model == Captum on its non-inplace copy (same weights)."""
    model, copy = MODELS[name]
    x = images(4, seed=5)
    target = torch.tensor([4, 0, 2, 1])
    default = {"resnet": "layer2", "functional": "conv2", "plain": "4"}[name]
    expected = captum_gradcam(copy, x, target, layer or default)
    got = gradcam(model, x, target, layer=layer)
    assert got.shape == (4, 16, 16)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert got.min() >= 0 and got.max() <= 1


def test_inplace_overwrite_would_change_the_map():
    """The layers tested above are ones a later in-place op overwrites: hooking them naively
    (reading the output after the forward) gives a different tensor from the layer's own."""
    model, copy = resnet_pair()
    x = images(2)
    seen = {}
    h = model.layer1[0].bn2.register_forward_hook(lambda m, i, o: seen.setdefault("o", o))
    h2 = copy.layer1[0].bn2.register_forward_hook(lambda m, i, o: seen.setdefault("c", o))
    model(x), copy(x)
    h.remove(), h2.remove()
    assert not torch.allclose(seen["o"], seen["c"])


def pp_reference(model, x, target, layer_name):
    """Grad-CAM++ written from the paper (eq. 19, Y = exp(S)) with explicit loops."""
    layer = dict(model.named_modules())[layer_name.split(" #")[0]]  # Captum: the last call
    store = {}
    h = layer.register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    x = x.clone().requires_grad_(True)
    logits = model(x)
    h.remove()
    acts = store["a"]
    grads = torch.autograd.grad(logits[torch.arange(len(x)), target].sum(), acts)[0]
    acts, grads = acts.detach().double(), grads.double()
    maps = []
    for b in range(len(x)):
        cam = torch.zeros(acts.shape[2:], dtype=torch.float64)
        for k in range(acts.shape[1]):
            g, a = grads[b, k], acts[b, k]
            denom = 2 * g**2 + a.sum() * g**3
            alpha = torch.zeros_like(g)
            nz = denom != 0
            alpha[nz] = g[nz] ** 2 / denom[nz]
            cam += (alpha * g.clamp(min=0)).sum() * a
        maps.append(cam.clamp(min=0))
    cam = torch.stack(maps)[:, None].float()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.amax((1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp(min=1e-30), cam)


@pytest.mark.parametrize("layer", ["layer2", "layer1.0.bn2"])
def test_gradcam_pp_equals_the_paper_formula(layer):
    model, copy = resnet_pair()
    x = images(3, seed=7)
    target = torch.tensor([1, 3, 0])
    got = gradcam(model, x, target, layer=layer, method="gradcam++")
    torch.testing.assert_close(got, pp_reference(copy, x, target, layer), atol=1e-5, rtol=0)


def test_all_zero_map_stays_zero():
    """A target whose evidence is negative everywhere gives ReLU → 0, not 0/0."""
    model, _ = resnet_pair()
    with torch.no_grad():
        model.fc.weight.fill_(-1.0)  # every channel of layer2 ≥ 0 pushes logit 0 down
    cam = gradcam(model, images(2), target=0)
    assert torch.equal(cam, torch.zeros_like(cam))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), b=st.integers(1, 5))
def test_batched_equals_one_image_at_a_time(seed, b):
    """One forward + backward for the batch gives each image its own map. In float64: in
    float32 the kernels chosen for another batch size round differently, and where a ReLU's
    input lies within that rounding of 0 its gate flips (seed 1115, b = 2: 0.5 % of a
    saliency value), which says nothing about images leaking into each other's maps."""
    model = copy.deepcopy(MODELS["resnet"][0]).double()
    x = images(b, seed=seed).double()
    cams, sal = gradcam(model, x), saliency(model, x)
    for i in range(b):
        one = x[i : i + 1]
        torch.testing.assert_close(cams[i : i + 1], gradcam(model, one), atol=1e-12, rtol=0)
        torch.testing.assert_close(sal[i : i + 1], saliency(model, one), atol=1e-12, rtol=0)


def test_smoothgrad_with_zero_noise_is_saliency():
    model, _ = MODELS["functional"]
    x = images(3)
    torch.testing.assert_close(smoothgrad(model, x, n=4, sigma=0.0), saliency(model, x))


def test_smoothgrad_is_the_mean_of_abs_gradients_of_the_noisy_copies():
    """Independent truth: Captum's Saliency on the same noise draws, |grad| averaged."""
    model, _ = MODELS["resnet"]
    x, n, sigma = images(3, seed=2), 6, 0.15
    target = torch.tensor([1, 2, 3])
    got = smoothgrad(model, x, target, n=n, sigma=sigma, batch_size=6, seed=11)  # chunks of 2
    gen = torch.Generator().manual_seed(11)
    spread = (x.amax((1, 2, 3)) - x.amin((1, 2, 3))) * sigma
    noise = torch.cat([torch.randn((2, *x.shape), generator=gen) for _ in range(3)])
    grads = [
        Saliency(model).attribute(x + noise[i] * spread[:, None, None, None], target=target)
        for i in range(n)
    ]
    torch.testing.assert_close(got, torch.stack(grads).mean(0).amax(1), atol=1e-6, rtol=0)


def test_channels_last_gives_the_same_maps():
    model, _ = MODELS["resnet"]
    x = images(3, seed=4)
    torch.testing.assert_close(
        gradcam(model, x, channels_last=True), gradcam(model, x), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        saliency(model, x, channels_last=True), saliency(model, x), atol=1e-6, rtol=0
    )


def test_view_model_falls_back_from_channels_last(capfd):
    """A model that `.view()`s a conv output cannot run channels-last: the default tries it,
    falls back to the default layout, and still equals Captum, without a word on stderr
    (fx's GraphModule wrapper printed the failing generated code before the fallback)."""
    model, _ = MODELS["functional"]

    class View(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = model.conv1
            self.fc = torch.nn.Linear(6 * 16 * 16, 5)

        def forward(self, x):
            return self.fc(F.relu(self.conv(x)).view(x.shape[0], -1))

    net = View().eval()
    x = images(3, seed=1)
    t = torch.tensor([0, 1, 2])
    expected = Saliency(net).attribute(x, target=t, abs=True).amax(1)
    expected_cam = captum_gradcam(net, x, t, "conv")
    capfd.readouterr()
    torch.testing.assert_close(saliency(net, x, t), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(gradcam(net, x, t, layer="conv"), expected_cam, atol=1e-5, rtol=0)
    assert capfd.readouterr() == ("", "")


def test_model_that_cannot_be_deep_copied_still_equals_captum():
    """A lock attribute makes deepcopy raise TypeError; the inference copy is only a speed-up,
    so the maps come from the model itself, equal to Captum's, and the model keeps its lock."""
    model, fresh = resnet_pair()
    lock = model.lock = threading.Lock()
    x = images(2, seed=4)
    t = torch.tensor([1, 3])
    expected = Saliency(fresh).attribute(x, target=t, abs=True).amax(1)
    torch.testing.assert_close(saliency(model, x, t), expected, atol=1e-5, rtol=0)
    expected_cam = captum_gradcam(fresh, x, t, "layer1")
    torch.testing.assert_close(gradcam(model, x, t, "layer1"), expected_cam, atol=1e-5, rtol=0)
    assert model.lock is lock


@pytest.mark.parametrize(
    "call",
    [saliency, gradcam, lambda m, x: smoothgrad(m, x, n=2)],
    ids=["saliency", "gradcam", "smoothgrad"],
)
def test_inside_inference_mode_is_one_error_naming_the_fix(call):
    """Inference mode switches autograd off for good (enable_grad cannot undo it): saliency
    raised a raw RuntimeError and gradcam said the logits did not depend on the layer."""
    model, _ = MODELS["plain"]
    with torch.inference_mode(), pytest.raises(ExplainError, match="inference_mode") as error:
        call(model, images(2))
    assert "outside the torch.inference_mode() block" in str(error.value)
    assert "depend" not in str(error.value)


def test_inside_no_grad_gives_the_maps_captum_gives_outside():
    """torch.no_grad() around a call is fine: the maps equal Captum's, computed with grad on
    (gradcam said "the logits do not depend on layer" there)."""
    model, fresh = MODELS["resnet"]
    x = images(2, seed=6)
    t = torch.tensor([0, 4])
    expected = Saliency(fresh).attribute(x, target=t, abs=True).amax(1)
    expected_cam = captum_gradcam(fresh, x, t, "layer2")
    with torch.no_grad():
        sal, cam = saliency(model, x, t), gradcam(model, x, t, "layer2")
    torch.testing.assert_close(sal, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(cam, expected_cam, atol=1e-5, rtol=0)


def test_weights_changed_in_place_give_new_maps():
    """The folded inference copy must follow the model: after an in-place weight change
    (load_state_dict) the maps equal Captum's on a fresh model with those weights."""
    model, _ = resnet_pair()
    _, fresh = resnet_pair()  # the copy without in-place ops, for Captum
    x = images(2, seed=9)
    gradcam(model, x), saliency(model, x)  # a first call with the old weights
    with torch.no_grad():
        for p in fresh.parameters():
            p.mul_(1.5)
        fresh.layer1[0].bn1.running_mean.add_(0.3)
    model.load_state_dict(fresh.state_dict())
    torch.testing.assert_close(
        gradcam(model, x), captum_gradcam(fresh, x, fresh(x).argmax(1), "layer2"), atol=1e-5, rtol=0
    )
    expected = Saliency(fresh).attribute(x, target=fresh(x).argmax(1), abs=True).amax(1)
    torch.testing.assert_close(saliency(model, x), expected, atol=1e-5, rtol=0)
