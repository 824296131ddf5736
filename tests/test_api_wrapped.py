"""The Python API on a model as a notebook holds it: wrapped in nn.DataParallel or
torch.compile. Its layers are named as in the model inside (`features.3`, as diagnose names
them), the wrapper's `module.` / `_orig_mod.` prefix is accepted too, and the results are
the plain model's, checked against Captum and torch's own forward."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from cnnlab import explain, inspect

pytestmark = pytest.mark.usefixtures("one_thread")


def small() -> nn.Module:
    torch.manual_seed(0)
    features = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    )  # fmt: skip
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
    return nn.Sequential(features, head).eval()


def images(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(1))


WRAPS = {"dataparallel": (nn.DataParallel, "module."), "compile": (torch.compile, "_orig_mod.")}


@pytest.mark.parametrize("wrap", WRAPS)
def test_layer_names_are_the_inner_models(wrap):
    plain = small()
    assert explain.layer_names(WRAPS[wrap][0](plain)) == explain.layer_names(plain)


@pytest.mark.parametrize("wrap", WRAPS)
@pytest.mark.parametrize("prefixed", [False, True])
def test_gradcam_at_a_named_layer_of_a_wrapped_model_equals_captums(wrap, prefixed):
    plain, x = small(), images()
    wrapped = WRAPS[wrap][0](plain)
    layer = WRAPS[wrap][1] * prefixed + "0.5"
    cam = explain.gradcam(wrapped, x, target=[1, 3], layer=layer)
    expected = LayerGradCam(plain, plain[0][5]).attribute(x, target=[1, 3], relu_attributions=True)
    expected = LayerAttribution.interpolate(expected, x.shape[-2:], interpolate_mode="bilinear")
    expected = expected[:, 0] / expected.amax((1, 2, 3))[:, None, None]
    torch.testing.assert_close(cam, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("wrap", WRAPS)
def test_feature_maps_of_a_wrapped_model_are_the_layers_output(wrap):
    plain, x = small(), images()
    wrapped = WRAPS[wrap][0](plain)
    given = ["0.2", WRAPS[wrap][1] + "0.5"]
    maps = explain.feature_maps(wrapped, x, given)
    assert list(maps) == given
    with torch.no_grad():
        torch.testing.assert_close(maps["0.2"], plain[0][:3](x))
        torch.testing.assert_close(maps[given[1]], plain[0][:6](x))


@pytest.mark.parametrize("wrap", WRAPS)
def test_probe_actmax_erf_and_filters_of_a_wrapped_model_are_the_plain_models(wrap):
    # a compiled model's probe ran inductor on each batch size, and failed in its lowering
    plain, x = small(), images(8)
    y = torch.arange(8) % 2
    wrapped = WRAPS[wrap][0](plain)
    probe = dict(layers=["0.2", "0.5"], epochs=3)
    assert explain.linear_probe(wrapped, (x, y), (x, y), **probe) == explain.linear_probe(
        plain, (x, y), (x, y), **probe
    )
    act = dict(steps=2, restarts=1, input_size=(3, 16, 16))
    got = explain.activation_maximization(wrapped, WRAPS[wrap][1] + "0.5", [0, 1], **act)
    torch.testing.assert_close(
        got.images, explain.activation_maximization(plain, "0.5", [0, 1], **act).images
    )
    erf = explain.effective_receptive_field(wrapped, "0.5", (3, 16, 16), n=2)
    torch.testing.assert_close(
        erf.gradient, explain.effective_receptive_field(plain, "0.5", (3, 16, 16), n=2).gradient
    )
    torch.testing.assert_close(explain.filters(wrapped), explain.filters(plain))


@pytest.mark.parametrize("wrap", WRAPS)
def test_trace_and_default_layer_name_the_inner_models_layers(wrap):
    plain, x = small(), images()
    wrapped = WRAPS[wrap][0](plain)
    assert inspect.trace(wrapped, x) == inspect.trace(plain, x)
    assert inspect.default_layer(wrapped, x) == inspect.default_layer(plain, x)


def test_a_model_with_a_compiled_block_is_read_eagerly_with_the_plain_models_results():
    # compiled, the block's graph took in cnnlab's hooks: a recompile per hooked layer, and
    # the probe's pooling hook failed in inductor ('cannot determine truth value of
    # Relational'), reported as images of the wrong shape
    from torch._dynamo.utils import counters

    plain, x = small(), images(8)
    y = torch.arange(8) % 2
    model = small()
    model[0] = torch.compile(model[0])
    compiled = counters["frames"]["ok"]
    assert explain.linear_probe(model, (x, y), (x, y), epochs=3) == {
        name.replace("0.", "0._orig_mod.", 1) if name.startswith("0.") else name: accuracy
        for name, accuracy in explain.linear_probe(plain, (x, y), (x, y), epochs=3).items()
    }
    torch.testing.assert_close(
        explain.gradcam(model, x, layer="0._orig_mod.5"), explain.gradcam(plain, x, layer="0.5")
    )
    assert counters["frames"]["ok"] == compiled


@pytest.mark.parametrize("wrap", WRAPS)
def test_capture_on_a_wrapped_model_takes_the_names_layer_names_lists(wrap):
    # layer_names listed 'features.5' and Capture refused it: "unknown layer '0.5'; valid
    # layer names: ..., 0.5, ..."
    plain, x = small(), images()
    wrapped = WRAPS[wrap][0](plain)
    names = ["0.5", WRAPS[wrap][1] + "0.2"]
    assert "0.5" in explain.layer_names(wrapped)
    with inspect.Capture(wrapped, names) as cap, torch.no_grad():
        wrapped(x)
    with torch.no_grad():
        torch.testing.assert_close(cap.tensor("0.5"), plain[0][:6](x))
        torch.testing.assert_close(cap.tensor(names[1]), plain[0][:3](x))
    assert inspect.resolve_layer(wrapped, "0.5") is plain[0][5]
