"""Models people bring, driven through the commands as a new user would: what Hugging Face's
and MONAI's classifiers showed cnnlab's own specs never do. A Swin-style window attention
gives one (heads, N, N) map of probabilities per window, so its 4-D output holds the windows
of every image on dim 0: (B·windows, heads, N, N); an EfficientNet port pads before each
depthwise conv with a padding module, whose output is a map with a border, at no resolution
of the net. Layer names that are ModuleDict keys a file name cannot hold as they are, and
linear probes on a layer with rows per window; the diagnose and probe tables name every layer
in full. Truth: the shapes plain torch gives, the names
torch gives the modules, the files on disk."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

from cnnlab.cli import main
from cnnlab.errors import ExplainError
from cnnlab.explain import linear_probe

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

WINDOWED_FILE = '''
from torch import nn


class WindowAttention(nn.Module):
    """Self-attention within 2x2 windows, as Swin's: `drop` sees (B*windows, 1, 4, 4)."""

    def __init__(self, dim):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.drop = nn.Dropout(0.0)

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 3, 5, 1).reshape(-1, 4, c)
        q, k, v = self.qkv(t).chunk(3, -1)
        attn = self.drop((q @ k.transpose(1, 2) / c**0.5).softmax(-1).unsqueeze(1))
        out = attn.squeeze(1) @ v
        return out.reshape(b, -1, c)  # tokens (B, H*W, C), as Swin's stages return


class Windowed(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
        self.attn = WindowAttention(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.attn(self.stem(x)).mean(1))


def make():
    return Windowed()
'''

# 16 px: maps of 8, 4 and 1 px; the last conv's "same" padding is a module, as an EfficientNet
# port's (MONAI's ConstantPad2d, Hugging Face's ZeroPad2d): its output is 5×5
PADDED_FILE = """
from torch import nn


def make():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=4, padding=1), nn.ReLU(),
        nn.ZeroPad2d(2), nn.Conv2d(8, 8, 5, groups=8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8, 10),
    )
"""

# a conv that standardises its weight in forward, as BiT's WeightStandardizedConv2d (Hugging
# Face) and timm's StdConv2d: its output is no dot product of its `weight`
STANDARDIZED_FILE = """
import torch.nn.functional as F
from torch import nn


class StdConv2d(nn.Conv2d):
    def forward(self, x):
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


def make():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), StdConv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )
"""


def _trained(root, code: str):
    """A run of `code`'s make() trained for one epoch on digits at 16×16."""
    (root / "net.py").write_text(code)
    out = root / "run"
    argv = ["train", "--model", f"{root / 'net.py'}:make", "--data", "digits",
            "--input", "1,16,16", "--epochs", "1", "--no-flip", "--no-tta", "--precision",
            "fp32", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def windowed_run(tmp_path_factory, one_thread):
    return _trained(tmp_path_factory.mktemp("windowed"), WINDOWED_FILE)


@pytest.fixture(scope="module")
def standardized_run(tmp_path_factory, one_thread):
    return _trained(tmp_path_factory.mktemp("standardized"), STANDARDIZED_FILE)


@pytest.fixture(scope="module")
def padded_run(tmp_path_factory, one_thread):
    return _trained(tmp_path_factory.mktemp("padded"), PADDED_FILE)


def _windows_shape(run) -> tuple[int, ...]:
    """The output shape of `attn.drop` on one image, by a plain forward hook."""
    seen = []
    hook = run.model.attn.drop.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        run.model(torch.zeros(1, 1, 16, 16))
    hook.remove()
    return tuple(seen[0])


def test_the_explorer_offers_no_map_whose_first_dim_is_not_the_image(windowed_run):
    from cnnlab.explorer import create_app
    from cnnlab.train.rundir import load_run

    assert _windows_shape(load_run(windowed_run)) == (64, 1, 4, 4)  # 64 windows of one image
    client = TestClient(create_app(windowed_run))
    model = client.get("/api/model").json()
    # it was a map and a Grad-CAM layer: its features were the first window's, and Grad-CAM
    # weighed the first window's (4, 4) probabilities as the image's map
    assert "attn.drop" not in model["maps"] and "attn.drop" not in model["spatial"]
    assert list(model["spatial"]) == ["stem.0", "stem.1", "stem"]
    image = client.post("/api/predict", data={"sample": 0}).json()["image"]
    said = client.get(f"/api/features?image={image}&layer=attn.drop").json()
    assert "'attn.drop' (Dropout) has no (C, H, W) map" in said["error"]
    # the API's default Grad-CAM layer is the page's, and it says which: it was None, and
    # the map was taken at attn.drop, the last 4-D output of the forward
    heat = client.get(f"/api/heatmap?image={image}&method=gradcam").json()
    assert heat["layer"] == "stem" and len(heat["map"]) == 16


def test_the_reports_layers_are_those_with_one_output_per_image(windowed_run):
    from cnnlab.report import facts
    from cnnlab.report.sources import Budget, Sources
    from cnnlab.train.rundir import load_run

    run = load_run(windowed_run)
    src = Sources(windowed_run, run, None, Budget(probe_train=256, probe_test=64))
    assert "attn.drop" not in {name for name, _, _ in src.layers}
    # it was the stage of 4×4 maps, so the probes' features held 64 rows per image: "Not
    # shown: ValueError: Expected input batch_size (16384) to match target batch_size (256)"
    assert src.stages == ["stem.1"]
    probes = facts._probes(src)
    # one map size after the stem: the model's blocks, as `cnnlab probe`; none per window
    blocks = {"input", "stem.0 Conv2d", "stem.1 ReLU", "attn WindowAttention", "head Linear"}
    assert set(probes.accuracy) == blocks and probes.train == 256


def test_no_padding_layer_is_a_grad_cam_layer_nor_a_stage(padded_run):
    from cnnlab.explorer import create_app
    from cnnlab.report.sources import Budget, Sources
    from cnnlab.train.rundir import load_run

    run = load_run(padded_run)
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: shapes.update({n: tuple(o.shape)}))
             for n, m in run.model.named_children()]  # fmt: skip
    with torch.no_grad():
        run.model(torch.zeros(1, 1, 16, 16))
    for hook in hooks:
        hook.remove()
    assert shapes["5"] == (1, 8, 1, 1) and shapes["6"] == (1, 8, 5, 5)  # a 1-px map, padded
    # the padding was the page's Grad-CAM layer: a 1-px map with a 2-px border, upsampled,
    # is a blob at the centre whatever the image; and a report stage of 5×5 maps
    client = TestClient(create_app(padded_run))
    assert list(client.get("/api/model").json()["spatial"]) == ["0", "1", "2", "3"]
    image = client.post("/api/predict", data={"sample": 0}).json()["image"]
    assert client.get(f"/api/heatmap?image={image}").json()["layer"] == "3"
    assert Sources(padded_run, run, None, Budget()).stages == ["1", "3"]


def test_eval_tta_of_a_run_without_flips_says_it_is_the_plain_evaluation(windowed_run, capsys):
    from cnnlab.train.rundir import load_run

    assert load_run(windowed_run).config["flip"] is False  # --no-flip, as digits by default
    assert main(["eval", str(windowed_run)]) == 0
    plain = capsys.readouterr().out.splitlines()[0]
    assert main(["eval", str(windowed_run), "--tta"]) == 0
    said = capsys.readouterr()
    # it said "test accuracy, flip TTA: ..." for the plain evaluation: no image was mirrored
    assert said.out.splitlines()[0] == plain and "TTA" not in plain
    assert "has no views" in said.err and len(said.err.strip().splitlines()) == 1


@pytest.mark.parametrize(("fixture", "report_at"), [("windowed_run", "stem"), ("padded_run", "3")])
def test_the_reports_grad_cam_is_at_a_map_of_the_image(fixture, report_at, request):
    from cnnlab.inspect import default_layer
    from cnnlab.report import facts
    from cnnlab.report.sources import Budget, Sources
    from cnnlab.train.rundir import load_run

    out = request.getfixturevalue(fixture)
    run = load_run(out)
    src = Sources(out, run, None, Budget(gradcam_images=2))
    # explain's default was the windows' probabilities ("attn.drop"), the 5×5 padding ("6"):
    # explain and the report now share inspect's rule (image_maps)
    assert default_layer(run.model, src.test[1][:1]) == report_at
    assert src.gradcam_layer == report_at
    groups = facts._gradcam(src)
    assert {g.layer for g in groups} == {report_at}


def test_the_dot_product_of_a_conv_that_changes_its_weight_in_forward_is_refused(
    standardized_run,
):
    from cnnlab.explorer import create_app

    client = TestClient(create_app(standardized_run))
    image = client.post("/api/predict", data={"sample": 0}).json()["image"]
    plain = client.get(f"/api/trace?image={image}&layer=0&channel=3&row=4&col=5").json()
    assert plain["output"] == pytest.approx(plain["network"], rel=1e-4, abs=1e-5)
    # it answered 200 with an output by the raw weight that was not the network's value
    said = client.get(f"/api/trace?image={image}&layer=2&channel=3&row=4&col=5")
    assert said.status_code == 400
    assert said.json()["error"].startswith("2 (StdConv2d) does not compute conv(input, weight)")


def test_visualize_maps_refuses_a_layer_with_rows_per_window(windowed_run, tmp_path, capsys):
    """`visualize --maps --layers attn.drop` drew window 0 of 64 as if it were the image's map."""
    import numpy as np
    from PIL import Image

    image = tmp_path / "one.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16), dtype=np.uint8)).save(image)
    args = ["visualize", str(windowed_run), "--maps", str(image), "--out", str(tmp_path / "o")]
    assert main([*args, "--layers", "attn.drop"]) == 2
    err = capsys.readouterr().err
    assert "'attn.drop' gives 64 rows for 1 image" in err and "choose one of: stem" in err
    assert not (tmp_path / "o" / "maps_attn.drop.png").exists()
    assert main([*args, "--layers", "stem"]) == 0  # a map of the image still draws


# The commands on models as people write them: layer names that are
# ModuleDict keys with characters a file name cannot hold as they are. Truth: the names torch
# gives the modules, and the files on disk.


KEYED_FILE = """
from torch import nn


class Keyed(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleDict({"block1/conv": nn.Conv2d(1, 4, 3, padding=1),
                                     "block1/relu": nn.ReLU()})
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        for layer in self.layers.values():
            x = layer(x)
        return self.fc(x.mean((2, 3)))


def make():
    return Keyed()
"""


def test_visualize_writes_one_file_per_layer_whose_name_holds_a_slash(tmp_path, capsys):
    """`maps_layers.block1/conv.png` was written as conv.png in a new directory
    maps_layers.block1 (and relu.png beside it); explain's names were already safe."""
    from cnnlab.train.rundir import load_run
    from tiny_nets import imported_run

    run_dir = imported_run(tmp_path, KEYED_FILE, data="digits", input_shape=(1, 8, 8))
    names = [n for n, _ in load_run(run_dir).model.named_modules()]
    assert "layers.block1/conv" in names  # torch's own name for it
    Image.new("L", (8, 8), 128).save(tmp_path / "x.png")
    out = tmp_path / "maps"
    assert (
        main(["visualize", str(run_dir), "--maps", str(tmp_path / "x.png"), "--out", str(out)]) == 0
    )
    written = sorted(p.name for p in out.iterdir())
    assert written == ["maps_layers.block1_conv.png", "maps_layers.block1_relu.png"]
    assert all((out / name).is_file() for name in written)
    argv = ["visualize", str(run_dir), "--actmax", "layers.block1/relu", "--channels", "1",
            "--steps", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert (out / "actmax_layers.block1_relu.png").is_file()


# Linear probes on a layer whose output has one row per window, not per image (a Swin
# window attention's): refused by name, where the fit failed on a batch-size mismatch.


class Windows(nn.Module):
    """(B, C, H, W) -> (4B, C, H/2, W/2): the map cut into four windows, each a row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.reshape(b, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b * 4, c, h // 2, w // 2)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.windows = Windows()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.windows(torch.relu(self.conv(x)))  # rows: windows
        b = x.shape[0]
        return self.head(y.mean((2, 3)).reshape(b, 4, 4).mean(1))


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_a_layer_with_rows_per_window_is_refused_by_name():
    model = Net().eval()
    with pytest.raises(ExplainError, match=r"layer 'windows' gives 24 rows for 6 images"):
        linear_probe(model, _data(6, 0), _data(6, 1), layers=["windows"], epochs=2)


def test_the_layers_with_rows_per_image_still_probe():
    model = Net().eval()
    found = linear_probe(model, _data(12, 0), _data(12, 1), layers=["conv"], epochs=2)
    assert set(found) == {"input", "conv"}
    assert all(0.0 <= a <= 1.0 for a in found.values())


# The diagnose and probe tables name every layer in full: at 80 columns each row of a
# model with Hugging Face-length names read "backbone.encoder_stage_…" (rich cut the column),
# so no row said which layer it was. Truth: the model's own `named_modules()` names.


NET = """
from torch import nn


class Stage(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.depthwise_convolution_layer = nn.Conv2d(cin, cout, 3, padding=1)
        self.activation_function_after_it = nn.ReLU()

    def forward(self, x):
        return self.activation_function_after_it(self.depthwise_convolution_layer(x))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder_stage_number_one = Stage(1, 4)
        self.encoder_stage_number_two = Stage(4, 4)

    def forward(self, x):
        return self.encoder_stage_number_two(self.encoder_stage_number_one(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = Encoder()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

    def forward(self, x):
        return self.head(self.backbone(x))


def make():
    return Net()
"""


def first_column(text: str) -> list[str]:
    """The first column of every rich table in `text`, a cell's folded lines joined."""
    names: list[str] = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) < 2:
            continue
        if names and cells[0] and not any(cells[1:]):  # a folded cell goes on
            names[-1] += cells[0]
        elif cells[0]:
            names.append(cells[0])
    return names


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    (root / "longnames.py").write_text(NET)
    out = root / "run"
    argv = ["train", "--model", f"{root / 'longnames.py'}:make", "--data", "digits"]
    quick = ["--epochs", "1", "--no-flip", "--no-tta", "--precision", "fp32", "--quiet"]
    assert main([*argv, "--out", str(out), *quick]) == 0
    return out


FULL = "backbone.encoder_stage_number_two.activation_function_after_it"


@pytest.mark.parametrize("command", [["diagnose"], ["probe", "--epochs", "2", "--layers", FULL]])
def test_every_layer_is_named_in_full(run, command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    capsys.readouterr()
    assert main([command[0], str(run), *command[1:]]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    assert FULL in first_column(out)
