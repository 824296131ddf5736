"""Models brought to cnnlab that hold some maps channels-last: a ConvNeXt block permutes its
(B, C, H, W) map to (B, H, W, C) for LayerNorm and its pointwise Linear layers, and back.
Truth: plain torch on the same layers (a hook on the activation, the channels read on the axis
the Linear layers act on), and the layers' own sizes (Linear.out_features)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from cnnlab import diagnose, explain
from cnnlab.errors import ExplainError
from cnnlab.inspect import default_layer, spatial_layers
from tiny_nets import outputs

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


class ConvNeXtish(nn.Module):
    """A ConvNeXt block as its authors write it: a depthwise conv on (B, C, H, W), then
    permute to (B, H, W, C), LayerNorm, Linear, activation, Linear, and permute back."""

    def __init__(self, width: int = 8, hidden: int = 32, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 2, stride=2)
        self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.norm = nn.LayerNorm(width)
        self.pw1, self.act, self.pw2 = nn.Linear(width, hidden), act(), nn.Linear(hidden, width)
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        x = self.stem(x)
        y = self.dw(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.pw2(self.act(self.pw1(self.norm(y)))).permute(0, 3, 1, 2)
        return self.fc((x + y).mean((2, 3)))


def killed(dead: tuple[int, ...]) -> ConvNeXtish:
    """A ConvNeXtish whose hidden units `dead` never fire: zero weights, bias -1."""
    torch.manual_seed(0)
    model = ConvNeXtish().eval()
    with torch.no_grad():
        for unit in dead:
            model.pw1.weight[unit] = 0
            model.pw1.bias[unit] = -1
    return model


def never_positive(model: nn.Module, module: nn.Module, x: torch.Tensor, axis: int) -> list[int]:
    """Plain torch: the channels (on `axis`) of module's output that are never > 0 on x."""
    with torch.no_grad():
        _, seen = outputs(module, lambda: model(x))
    y = seen[0].movedim(axis, -1).flatten(0, -2)  # (positions, channels)
    return (y.amax(0) <= 0).nonzero().flatten().tolist()


def test_dead_units_of_a_channels_last_activation_are_its_channels_not_its_rows():
    model = killed((3, 17))
    x = torch.randn(64, 1, 16, 16)  # an 8×8 map of 32 hidden units: rows != channels
    truth = never_positive(model, model.act, x, axis=-1)  # the Linear's features: last axis
    assert truth == [3, 17]
    (layer,) = diagnose.dead_units(model, x).layers
    assert layer.name == "act"
    assert layer.channels == model.pw1.out_features == 32  # was 8, the map's height
    assert list(layer.dead_channels) == truth


def test_dead_units_of_a_transformers_convnext_count_its_hidden_units():
    transformers = pytest.importorskip("transformers")
    config = transformers.ConvNextConfig(
        num_channels=1, num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], patch_size=2,
        num_labels=10,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.ConvNextForImageClassification(config).eval()

    class Logits(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x):
            return self.net(pixel_values=x).logits

    layers = diagnose.dead_units(Logits(), torch.randn(8, 1, 16, 16)).layers
    hidden = [m.pwconv1.out_features for m in model.modules() if hasattr(m, "pwconv1")]
    assert hidden == [32, 64]  # 4 × hidden_sizes
    assert [layer.channels for layer in layers] == hidden  # were 8 and 4: the maps' heights


def test_dead_units_of_maps_in_the_usual_layout_are_unchanged():
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 36, 10))
    with torch.no_grad():
        model[0].weight[2], model[0].bias[2] = 0, -1
    x = torch.randn(16, 1, 8, 8)
    (layer,) = diagnose.dead_units(model, x).layers
    assert layer.channels == 6 and list(layer.dead_channels) == never_positive(
        model, model[1], x, axis=1
    )


class PatchMLP(nn.Module):
    """A ViT's MLP on its tokens: patches (B, C, h, w) -> flatten(2).transpose(1, 2) gives
    (B, N, C), and the Linear layers act on the last dim."""

    def __init__(self, width: int = 6, hidden: int = 12):
        super().__init__()
        self.patches = nn.Conv2d(1, width, 4, stride=4)
        self.fc1, self.act, self.fc2 = nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        tokens = self.patches(x).flatten(2).transpose(1, 2)  # (B, N, C)
        return self.head(self.fc2(self.act(self.fc1(tokens))).mean(1))


def test_dead_units_of_a_token_mlp_are_its_hidden_units_not_its_tokens():
    torch.manual_seed(0)
    model = PatchMLP().eval()
    with torch.no_grad():
        model.fc1.weight[5], model.fc1.bias[5] = 0, -1
    x = torch.randn(16, 1, 8, 8)  # 4 tokens of 12 hidden units
    truth = never_positive(model, model.act, x, axis=-1)
    assert truth == [5]
    (layer,) = diagnose.dead_units(model, x).layers
    assert layer.channels == model.fc1.out_features == 12  # was 4, the token count
    assert list(layer.dead_channels) == truth


def captum_gradcam(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Captum's Grad-CAM of the predicted class, upsampled and scaled as cnnlab's."""
    with torch.no_grad():
        t = model(x).argmax(1)
    cam = LayerGradCam(model, layer).attribute(x, t, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear")[:, 0]
    peak = cam.amax((1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-30), 0.0)


def test_grad_cam_of_a_convnext_block_is_taken_at_a_channels_first_map():
    torch.manual_seed(0)
    model = ConvNeXtish().eval()
    x = torch.randn(3, 1, 16, 16)
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen.update({n: o.shape}))
             for n, m in model.named_children()]  # fmt: skip
    model(x)
    for hook in hooks:
        hook.remove()
    assert seen["pw2"] == (3, 8, 8, model.pw2.out_features)  # (B, H, W, C): channels last
    assert seen["dw"] == (3, model.dw.out_channels, 8, 8)  # (B, C, H, W)
    # the maps Grad-CAM may use: the (B, C, H, W) ones; pw2's (B, H, W, C) was the default,
    # read as 8 channels of 8×8 maps whose columns were its channels
    assert spatial_layers(model, x) == ["stem", "dw"]
    assert default_layer(model, x) == "dw"
    torch.testing.assert_close(explain.gradcam(model, x), captum_gradcam(model, model.dw, x))
    # a named channels-last layer is read as its (B, C, H, W) map (once refused):
    # tests/test_walk_channels_last_maps.py


def test_activation_maximization_of_a_channels_last_unit_maximises_that_unit():
    torch.manual_seed(0)
    model = ConvNeXtish().eval()
    # unit 20 of 32 hidden units on an 8×8 map: was "channel 20 is outside layer 'act''s
    # channels 0..7", the rows read as channels
    result = explain.activation_maximization(
        model, "act", [20, 3], steps=8, restarts=1, input_size=(1, 16, 16)
    )
    with torch.no_grad():
        _, seen = outputs(model.pw1, lambda: model(result.images))
    units = seen[0][torch.arange(2), 4, 4, torch.tensor([20, 3])]  # (B, H, W, C): centre unit
    torch.testing.assert_close(result.activation, units)  # ReLU: its input is maximised


CONVNEXT_FILE = """
import torch
from torch import nn


class ConvNeXtish(nn.Module):
    def __init__(self, width=8, hidden=32):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 2, stride=2)
        self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.norm = nn.LayerNorm(width)
        self.pw1, self.act, self.pw2 = nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width)
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        x = self.stem(x)
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.pw2(self.act(self.pw1(self.norm(y)))).permute(0, 3, 1, 2)
        return self.fc((x + y).mean((2, 3)))


def make_net():
    return ConvNeXtish()
"""


@pytest.fixture(scope="module")
def convnext_run(tmp_path_factory, one_thread):
    """A run of CONVNEXT_FILE's model trained for one epoch on digits (16×16), made once for
    the tests that read it."""
    from cnnlab.cli import main

    root = tmp_path_factory.mktemp("convnext")
    nets, out = root / "convnext.py", root / "run"
    nets.write_text(CONVNEXT_FILE)
    quick = ["--epochs", "1", "--no-flip", "--no-tta", "--precision", "fp32", "--quiet"]
    argv = ["train", "--model", f"{nets}:make_net", "--data", "digits", "--input", "1,16,16"]
    assert main([*argv, "--out", str(out), *quick]) == 0
    return out


def test_visualize_of_a_convnext_run_reads_its_hidden_units(convnext_run, tmp_path, capsys):
    from PIL import Image

    from cnnlab.cli import main

    out = convnext_run
    figs = str(tmp_path / "figs")
    assert main(["visualize", str(out), "--actmax", "act", "--channels", "12", "--steps", "2",
                 "--out", figs]) == 0  # fmt: skip
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("channel ")]
    assert len(rows) == 12 <= ConvNeXtish().pw1.out_features  # was 8: the map's height
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(image)
    assert main(["visualize", str(out), "--maps", str(image), "--layers", "act",
                 "--out", figs]) == 0  # fmt: skip
    with Image.open(tmp_path / "figs" / "maps_act.png") as grid:  # 32 maps: 6 rows of 6 tiles
        assert grid.size == (6 * (64 + 1) + 1,) * 2  # once refused; read as 8 maps of 8×32


def test_the_reports_stages_and_maps_of_a_convnext_run_are_channels_first_maps(convnext_run):
    from cnnlab.report.sources import Budget, Sources
    from cnnlab.train.rundir import load_run

    out = convnext_run
    run = load_run(out)
    shapes = {}  # plain torch: each layer's output on one image
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: shapes.update({n: o.shape}))
             for n, m in run.model.named_children()]  # fmt: skip
    with torch.no_grad():
        run.model(torch.zeros(1, 1, 16, 16))
    for hook in hooks:
        hook.remove()
    assert shapes["act"] == (1, 8, 8, run.model.pw1.out_features)  # Linear acts on the last dim
    # only the convs' outputs are (B, C, H, W); LayerNorm and Linear act on the last dim
    channels_first = {n for n, m in run.model.named_children() if isinstance(m, nn.Conv2d)}
    assert channels_first == {"stem", "dw"}
    src = Sources(out, run, None, Budget())
    # the ReLU 'act' ((1, 8, 8, 32)) was a map layer, drawn as 8 maps of 8×32, and a 'stage'
    # of resolution 8×32; it is drawn as its 32 maps of 8×8 now (test_walk_channels_last_maps)
    assert set(src.map_layers) <= channels_first | {"act"} and set(src.stages) <= channels_first


def test_effective_receptive_field_of_a_channels_last_layer_is_its_centre_units():
    torch.manual_seed(0)
    model = ConvNeXtish().eval()
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    _, seen = outputs(model.pw2, lambda: model(x))
    out = seen[0]  # (B, H, W, C)
    (grad,) = torch.autograd.grad(out[:, 4, 4, :].sum(), x)  # plain autograd: the centre units
    erf = explain.effective_receptive_field(model, "pw2", (1, 16, 16), n=4)
    torch.testing.assert_close(erf.gradient, grad.abs().mean((0, 1)))


def test_effective_receptive_field_of_a_token_layer_is_refused_naming_its_own_shape():
    model = PatchMLP().eval()
    seen = []
    hook = model.act.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    with torch.no_grad():
        model(torch.zeros(4, 1, 8, 8))
    hook.remove()
    assert seen == [(4, 4, 12)]  # plain torch: 4 tokens of 12 hidden units
    # was "(4, 12, 4)": the shape with its channels moved to dim 1, which no layer gives
    with pytest.raises(ExplainError, match=r"'act' has output shape \(4, 4, 12\);"):
        explain.effective_receptive_field(model, "act", (1, 8, 8), n=4)


def test_probe_features_of_a_channels_last_layer_pool_its_map_not_its_channels():
    from cnnlab.explain.probe import extract_features, pool_features

    torch.manual_seed(0)
    model = ConvNeXtish().eval()
    x = torch.randn(6, 1, 16, 16)
    y = torch.arange(6) % 2
    with torch.no_grad():
        _, seen = outputs(model.act, lambda: model(x))
    maps = seen[0].permute(0, 3, 1, 2)  # (B, 32, 8, 8): the 32 hidden units' maps
    feats, _ = extract_features(model, (x, y), ["act"], cap=32 * 4)
    # pooled to 2×2 per unit (32·2² = cap); the (B, 8, 8, 32) was pooled over (8, 32) as
    # if 8 channels had 8×32 maps, averaging units together
    torch.testing.assert_close(feats["act"], pool_features(maps, 32 * 4))
    # batches from a generator too (its layouts were not read: a first batch would be lost)
    stream = ((x[i : i + 4], y[i : i + 4]) for i in range(0, 6, 4))
    feats, labels = extract_features(model, stream, ["act"], cap=32 * 4)
    torch.testing.assert_close(feats["act"], pool_features(maps, 32 * 4))
    assert labels.tolist() == y.tolist()
