"""One rule for what a feature map of an image is (`inspect.image_maps`), shared by explain's
default Grad-CAM layer, `visualize --maps`, the explorer and the report. A 4-D output is one
only if its dim 0 is the batch's (two images, not one), no padding op returned it, and its
last two axes follow the image's size. Truth: the layer a person picks, the last conv stage's
output; the shapes plain torch gives."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.inspect import default_layer, image_maps, spatial_layers, trace

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread
transformers = pytest.importorskip("transformers")


def _old_default(model: nn.Module, x: torch.Tensor, output=None) -> str:
    """The rule before: the last 4-D output with H·W > 1 of one image's forward."""
    return [n for n, s in trace(model, x, output) if len(s) == 4 and s[2] * s[3] > 1][-1]


def _hf(name: str, **config) -> nn.Module:
    model = getattr(transformers, f"{name}ForImageClassification")
    return model(getattr(transformers, f"{name}Config")(num_labels=3, **config)).eval()


def _logits(out):
    return out.logits


def test_swinv2_last_stage_attention_is_no_map():
    # 16 px, patch 4, window 2: the last stage is 2x2 tokens, one window per image, so one
    # image's forward gives its attention probabilities as (1, heads, 4, 4)
    torch.manual_seed(0)
    cfg = {"embed_dim": 8, "depths": [1, 1], "num_heads": [1, 1], "window_size": 2}
    model = _hf("Swinv2", image_size=16, patch_size=4, **cfg)
    x = torch.randn(1, 3, 16, 16)
    assert "attention" in _old_default(model, x, _logits)  # the old rule picked an attention map
    # tokens read on their grid (the patch merging's output), never the attention probabilities
    assert default_layer(model, x, _logits) == "swinv2.encoder.layers.0.downsample"
    assert not [n for n in image_maps(model, x, _logits) if "attention" in n]


def test_mobilevitv2_unfolded_patches_are_no_maps():
    torch.manual_seed(0)
    model = _hf("MobileViTV2", image_size=64, width_multiplier=0.25)
    x = torch.randn(1, 3, 64, 64)
    shapes = dict(trace(model, x, _logits))
    patches = "mobilevitv2.encoder.layer.4.transformer"
    assert shapes[patches] == (1, 64, 4, 1)  # (B, C, P, N): 2x2 patches, one of them
    names = spatial_layers(model, x, _logits)
    assert patches not in names and not [n for n in names if ".transformer." in n]
    assert default_layer(model, x, _logits) == "mobilevitv2.encoder.layer.4"  # (128, 2, 2)
    assert "mobilevitv2.encoder.layer.4.conv_kxk" in names  # the convs before it stay maps


def test_efficientnet_padding_is_no_map():
    torch.manual_seed(0)
    cfg = {"image_size": 32, "width_coefficient": 0.1, "depth_coefficient": 0.1}
    model = _hf("EfficientNet", hidden_dim=128, **cfg)
    x = torch.randn(1, 3, 32, 32)
    # 32 px: the last maps are 1x1; the ZeroPad2d before the last stride-2 depthwise conv
    # makes the last 2x2 map 5x5, which was the default
    old = _old_default(model, x, _logits)
    assert old == "efficientnet.encoder.blocks.5.depthwise_conv.depthwise_conv_pad"
    assert default_layer(model, x, _logits) == "efficientnet.encoder.blocks.5.expansion"
    assert image_maps(model, x, _logits)["efficientnet.encoder.blocks.5.expansion"][2:] == (2, 2)
    assert not [n for n in image_maps(model, x, _logits) if n.endswith("_pad")]
    model = _hf("EfficientNet", hidden_dim=128, **{**cfg, "image_size": 64})
    x = torch.randn(1, 3, 64, 64)  # the top conv's map is 2x2: it is the default, as before
    assert default_layer(model, x, _logits) == "efficientnet.encoder.top_activation"


class SamePad(nn.Module):
    """An EfficientNet port's 'same' padding: its forward is F.pad alone."""

    def forward(self, x):
        return nn.functional.pad(x, (0, 1, 0, 1))


@pytest.mark.parametrize(
    "pad",
    [nn.ZeroPad2d(1), nn.ConstantPad2d(1, 0.5), nn.ReflectionPad2d(1)]
    + [nn.ReplicationPad2d(1), nn.CircularPad2d(1), SamePad()],
    ids=lambda p: type(p).__name__,
)
def test_padding_layers_are_no_maps(pad):
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(),  # 0, 1: 8x8
        nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU(),  # 2, 3: 4x4
        pad, nn.Flatten(), nn.LazyLinear(3),  # 4: the last 4-D output
    )  # fmt: skip
    x = torch.randn(1, 1, 16, 16)
    model(x)  # the lazy Linear takes its size
    model.eval()
    assert _old_default(model, x) == "4"
    assert default_layer(model, x) == "3"
    assert list(image_maps(model, x)) == ["0", "1", "2", "3"]


def test_plain_cnn_unchanged():
    # a Flatten-Linear head refuses the larger images: the maps before it are still judged
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 8 * 8, 10),
    ).eval()  # fmt: skip
    x = torch.randn(3, 3, 32, 32)
    old = [n for n, s in trace(model, x) if len(s) == 4 and s[2] * s[3] > 1]
    assert spatial_layers(model, x) == old == [str(i) for i in range(7)]
    assert default_layer(model, x) == _old_default(model, x) == "6"
    assert image_maps(model, x)["6"] == (1, 16, 8, 8)


class Cached(nn.Module):
    """Keeps a tensor its first forward computes, as some position encodings cache theirs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.cache = None

    def forward(self, x):
        if self.cache is None:
            self.cache = torch.zeros(x.shape[-2:], device=x.device)
        return (self.conv(x) + self.cache).mean((2, 3))


def test_shape_probe_leaves_no_meta_tensor_behind():
    model = Cached().eval()
    x = torch.randn(1, 1, 8, 8)
    assert default_layer(model, x) == "conv"
    assert model.cache is None  # the shape-only forwards kept no meta cache
    assert model(x).shape == (1, 2)
    assert all(not p.is_meta for p in model.parameters())


def test_monai_efficientnet_padding_is_no_map():
    nets = pytest.importorskip("monai.networks.nets")
    torch.manual_seed(0)
    model = nets.EfficientNetBN("efficientnet-b0", pretrained=False, in_channels=3, num_classes=3)
    x = torch.randn(1, 3, 32, 32)
    old = _old_default(model.eval(), x)
    assert old == "_blocks.6.15._depthwise_conv_padding"  # a ConstantPad2d of a 1x1 map: 3x3
    maps = image_maps(model, x)
    pads = [n for n, m in model.named_modules() if isinstance(m, nn.ConstantPad2d)]
    assert pads and not set(pads) & set(maps)  # the 1x1 convs' are nn.Identity: maps
    assert maps[default_layer(model, x)][2:] == (2, 2)  # the last map larger than 1x1


class NoMeta(nn.Module):
    """Reads a value in its forward (`.item()`), which the meta device has not: the shape
    probes run on x's device instead."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.pad = nn.ZeroPad2d(1)
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        scale = 1.0 if x.abs().max().item() < 1e9 else 0.0
        return self.head(self.pad(self.conv(x) * scale).flatten(1))


def test_a_model_the_meta_device_cannot_run_is_probed_on_its_own():
    model = NoMeta().eval()
    x = torch.randn(1, 1, 8, 8)
    with pytest.raises(Exception, match="meta"):  # why the probes fall back
        model.to("meta")(x.to("meta"))
    model = NoMeta().eval()
    assert default_layer(model, x) == "conv"
    assert list(image_maps(model, x)) == ["conv"]
    assert all(not p.is_meta for p in model.parameters())


class _BufferCache(nn.Module):
    """Sets a buffer registered as None at its first forward (a cache kept with the module)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.register_buffer("scale", None, persistent=False)

    def forward(self, x):
        if self.scale is None:
            self.scale = torch.ones(1, 4, 1, 1, device=x.device)
        return (self.conv(x) * self.scale).mean((2, 3))


def test_shape_probe_leaves_no_meta_buffer_behind():
    model, x = _BufferCache().eval(), torch.randn(2, 3, 8, 8)
    image_maps(model, x)
    assert model.scale is None  # the meta forward's buffer is not kept: the model still runs
    assert model(x).shape == (2, 4)


class _ResizesItsInput(nn.Module):
    """Resizes every input to 16×16 first (a deployment wrapper's habit): no map follows the
    image's size, and the rule that a map must (windows' N×N, unfolded patches) left none."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

    def forward(self, x):
        x = torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear")
        return self.head(self.body(x))


def test_a_model_that_resizes_its_input_keeps_its_maps():
    model, x = _ResizesItsInput().eval(), torch.randn(2, 3, 16, 16)
    assert default_layer(model, x) == "body"  # was: 'the model has no layer with a ... map'


class _TupleCache(nn.Module):
    """Caches a (cos, sin) pair at its first forward, as rotary position embeddings do."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.cache = None

    def forward(self, x):
        if self.cache is None:
            self.cache = (torch.ones(x.shape[-2:], device=x.device),) * 2
        return (self.conv(x) * self.cache[0] + self.cache[1]).mean((2, 3))


def test_shape_probe_leaves_no_meta_tuple_behind():
    model, x = _TupleCache().eval(), torch.randn(2, 3, 8, 8)
    image_maps(model, x)
    assert model.cache is None and model(x).shape == (2, 4)
