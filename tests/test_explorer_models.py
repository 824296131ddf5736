"""The explorer on models a spec does not build: a ConvNeXt-style block (channels last between
its permutes), a TorchScript block, compiled and DataParallel wrappers, convs registered out
of forward order, a block called twice, a model that changes a conv's input or its own input
in place. Runs are made directly (`Run(path, None, model, config)`) or trained from code.
Truth: plain forward hooks on the same model (on a fresh pass where the model writes in
place)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

import cnnlab
from cnnlab.explorer import create_app
from cnnlab.explorer.probe import Network, dot_product
from cnnlab.explorer.upload import read_upload
from cnnlab.train.rundir import Run
from explorer_runs import decoded, png_bytes

CONFIG = {"data": None, "classes": ["a", "b"], "mean": [0.5], "std": [0.25]}


class ConvNeXtBlock(nn.Module):
    """Depthwise conv, then LayerNorm, Linear, GELU, Linear on (B, H, W, C), then back."""

    def __init__(self, c: int):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.pw1 = nn.Linear(c, 4 * c)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(4 * c, c)

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.pw2(self.act(self.pw1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 64, 4, stride=4)  # 16×16 -> 64 channels of 4×4
        self.block = ConvNeXtBlock(64)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 2))

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


def outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every module's output on x (1, C, H, W), batch dim dropped, from forward hooks (a
    TorchScript module takes none)."""
    seen, handles = {}, []
    for name, m in model.named_modules():
        if name and not isinstance(m, torch.jit.ScriptModule):
            hook = lambda m, a, o, name=name: seen.__setitem__(name, o[0].clone())  # noqa: E731
            handles.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return seen


def noise_png(size: tuple[int, int] = (16, 16)) -> bytes:
    """A grey noise image (seed 0) as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, size, "u1")).save(buffer, "PNG")
    return buffer.getvalue()


def served(tmp_path, model: nn.Module, input_shape: list[int]) -> tuple[TestClient, str, Run]:
    """The model served from a run made directly, and the id of one uploaded noise image."""
    run = Run(tmp_path, None, model.eval(), {**CONFIG, "input_shape": input_shape})
    client = TestClient(create_app(run))
    upload = noise_png(input_shape[1:])
    sent = client.post("/api/predict", files={"image": ("n.png", upload, "image/png")})
    assert sent.status_code == 200, sent.text
    pixels, _ = read_upload(upload, "n.png", run.input_shape)
    return client, sent.json()["image"], run


def test_channels_last_layers_are_feature_maps_moved_to_channels_first(tmp_path):
    """LayerNorm, Linear and GELU between the permutes hold (H, W, C): the model route offers
    them as maps with their channels first, as hooks see them permuted by torch; the maps it
    offers are (C, H, W) as hooks see them (the depthwise conv: 64 channels of 4×4), and
    Grad-CAM reads the channels-last one (tests/test_explorer_channels_last.py has the rest)."""
    torch.manual_seed(0)
    client, image, run = served(tmp_path, ConvNeXtish(), [1, 16, 16])
    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 1, 16, 16), "u1"))
    truth = outputs(run.model, run.preprocess(pixels))
    assert tuple(truth["block.norm"].shape) == (4, 4, 64)  # the truth: channels last
    info = client.get("/api/model").json()
    last = {"block.norm", "block.pw1", "block.act", "block.pw2"}
    rows = {r["label"]: r["spatial"] for r in info["architecture"]["rows"]}
    assert all(rows[n] for n in last)
    assert rows["block.dw"] and rows["block"]
    assert last <= set(info["maps"]) and last <= set(info["spatial"])
    for layer in ("stem", "block.dw", "block", *sorted(last)):
        want = truth[layer].permute(2, 0, 1) if layer in last else truth[layer]
        assert info["maps"][layer] == list(want.shape)
        maps = client.get("/api/features", params={"image": image, "layer": layer}).json()
        assert (maps["channels"], maps["h"], maps["w"]) == tuple(want.shape)
        step = float(want.amax() - want.amin()) / 255
        np.testing.assert_allclose(decoded(maps), want.numpy(), atol=step / 2 + 1e-5)
    query = {"image": image, "method": "gradcam", "layer": "block.norm"}
    assert client.get("/api/heatmap", params=query).status_code == 200
    t = client.get(
        "/api/trace",
        params={"image": image, "layer": "block.dw", "channel": 63, "row": 0, "col": 3},
    ).json()
    assert t["output"] == pytest.approx(float(truth["block.dw"][63, 0, 3]), abs=1e-5)
    # the LayerNorm after the conv is no BatchNorm, and the GELU does not follow the conv
    assert [s["layer"] for s in t["chain"]] == ["block.dw"]


def test_a_torchscript_block_leaves_the_layer_list_empty_with_the_summary_s_reason(tmp_path):
    """The summary refuses a model holding a torch.jit.script block; the explorer still
    serves it: no architecture rows, the summary's own message as the note, and the
    prediction, the feature maps and the dot product still the model's (forward hooks)."""
    import cnnlab
    from cnnlab.errors import CnnlabError

    torch.manual_seed(0)
    scripted = torch.jit.script(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()))
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), scripted,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    )  # fmt: skip
    with pytest.raises(CnnlabError) as refused:
        cnnlab.summary(model, (1, 16, 16))
    client, image, run = served(tmp_path, model, [1, 16, 16])
    arch = client.get("/api/model").json()["architecture"]
    assert (arch["rows"], arch["note"]) == ([], str(refused.value))
    assert arch["total_params"] == sum(p.numel() for p in model.parameters())
    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 1, 16, 16), "u1"))
    truth = outputs(run.model, run.preprocess(pixels))
    maps = client.get("/api/features", params={"image": image, "layer": "1"}).json()
    step = float(truth["1"].amax() - truth["1"].amin()) / 255
    np.testing.assert_allclose(decoded(maps), truth["1"].numpy(), atol=step / 2 + 1e-5)
    t = client.get(
        "/api/trace", params={"image": image, "layer": "0", "channel": 7, "row": 0, "col": 5}
    ).json()
    assert t["output"] == pytest.approx(float(truth["0"][7, 0, 5]), abs=1e-5)
    with torch.no_grad():
        want = torch.softmax(run.model(run.preprocess(pixels))[0], 0)
    got = client.post("/api/predict", files={"image": ("n.png", noise_png(), "image/png")})
    assert got.json()["probabilities"] == pytest.approx(want.tolist(), abs=1e-5)
    assert client.get("/api/heatmap", params={"image": image}).status_code == 200


def test_unwrap_looks_through_data_parallel_and_compile_in_any_nesting():
    """nn.DataParallel names every layer `module.X`; unwrap gives back the user's module
    itself (the same object: its names and weights), through torch.compile either side.
    Truth: the plain model's named_modules and its own forward."""
    from cnnlab.inspect import unwrap

    model = ConvNeXtish().eval()
    wrapped = nn.DataParallel(model)
    assert all(n.startswith("module") for n, _ in wrapped.named_modules() if n)
    for outer in (wrapped, torch.compile(wrapped), nn.DataParallel(torch.compile(model))):
        assert unwrap(outer) is model
    names = [n for n, _ in unwrap(wrapped).named_modules()]
    assert names == ["", "stem", "block", "block.dw", "block.norm", "block.pw1", "block.act",
                     "block.pw2", "head", "head.0", "head.1", "head.2"]  # fmt: skip
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(unwrap(wrapped)(x), wrapped(x))


def _with_compiled_child(compiled: bool) -> nn.Module:
    torch.manual_seed(0)
    act = nn.ReLU()
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
        torch.compile(act) if compiled else act,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
    ).eval()  # fmt: skip


def test_a_compiled_child_is_one_grad_cam_layer_named_as_the_model_names_it(tmp_path):
    """torch.compile on a child adds `3._orig_mod` to named_modules: Grad-CAM's layers (and
    the explorer's) offer `3` once, as the plain model's forward hooks list its maps, and
    Grad-CAM at `3` is ReLU(Σ_k mean(∂y/∂A_k) A_k), upsampled, computed with hooks."""
    from cnnlab.explain import gradcam
    from cnnlab.inspect import spatial_layers

    model, plain = _with_compiled_child(True), _with_compiled_child(False)
    x = torch.randn(1, 1, 8, 8)
    shapes = outputs(plain, x)
    truth = [n for n, y in shapes.items() if y.dim() == 3 and y.shape[1] * y.shape[2] > 1]
    assert truth == ["0", "1", "2", "3"]
    assert spatial_layers(model, x) == truth
    client, _, _ = served(tmp_path, model, [1, 8, 8])
    got = client.get("/api/model").json()
    assert list(got["spatial"]) == truth and "4" in got["maps"]  # feature view: 1×1 maps too
    seen = {}
    plain[3].register_forward_hook(lambda m, a, o: seen.update(a=o) or o.retain_grad())
    peaks = []
    for target in (0, 1):
        plain(x)[0, target].backward()
        a, g = seen["a"], seen["a"].grad
        cam = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True)).detach()
        cam = F.interpolate(cam, size=(8, 8), mode="bilinear", align_corners=False)[0, 0]
        peaks.append(float(cam.max()))
        want = cam / cam.max().clamp_min(1e-30)
        torch.testing.assert_close(gradcam(model, x, target, "3")[0], want)
    assert max(peaks) > 0  # at least one map is not all zeros


def test_network_finds_convs_in_forward_order_not_registration_order():
    """A model that registers its head conv first: the explorer follows the calls."""

    class Backwards(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.late = torch.nn.Conv2d(4, 2, 3)
            self.early = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.pool = torch.nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            return self.pool(self.late(F.relu(self.early(x)))).flatten(1)

    model = Backwards().eval()
    net = Network.of(model, (1, 9, 9))
    assert [c.conv for c in net.chains] == ["early", "late"]
    assert net.chains[0].act is None  # F.relu is no module: the chain stops at the conv
    x = torch.randn(1, 1, 9, 9)
    t = dot_product(net, net.probe(x), "late", 1, 6, 6)
    with torch.no_grad():
        own = float(model.late(F.relu(model.early(x)))[0, 1, 6, 6])
    assert t["output"] == pytest.approx(own, abs=1e-5)
    # unit 6 of `late` reads units 6..8 of `early` (padding 1: unit k sees pixels k-1..k+1)
    assert t["field"] == {"top": 5.0, "left": 5.0, "height": 5, "width": 5}


class SharedBlock(torch.nn.Module):
    """One block applied to two inputs (the second after a pool), one ReLU module reused."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.act = torch.nn.ReLU()
        self.block = torch.nn.Sequential(
            torch.nn.Conv2d(4, 4, 3, padding=1),
            torch.nn.BatchNorm2d(4),
            torch.nn.ReLU(inplace=True),
        )
        self.pool = torch.nn.MaxPool2d(2)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        x = self.pool(self.block(self.act(self.stem(x))))
        return self.head(self.act(self.block(x) - 0.5).mean((2, 3)))


def every_call(model, x) -> tuple[dict, dict]:
    """Each leaf module's inputs and outputs, a list with one per call, from plain forward
    hooks (the truth)."""
    ins, outs, handles = {}, {}, []
    for name, m in model.named_modules():
        if name and not m._modules:
            handles.append(m.register_forward_pre_hook(
                lambda m, a, name=name: ins.setdefault(name, []).append(a[0][0].clone())
            ))  # fmt: skip
            handles.append(m.register_forward_hook(
                lambda m, a, o, name=name: outs.setdefault(name, []).append(o[0].clone())
            ))  # fmt: skip
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return ins, outs


def test_each_call_of_a_module_called_twice_is_its_own_entry(tmp_path):
    """A shared block applied to two inputs and a reused ReLU: every call is an entry of its
    own, labelled as the summary labels calls (`block.0 #2`); its maps are that call's output
    and its dot product reads that call's input. Truth: forward hooks on every call, and the
    summary's receptive field of each call."""
    torch.manual_seed(0)
    model = SharedBlock().eval()
    bn = model.block[1]
    bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2.0)  # not the identity
    config = {"data": None, "classes": ["a", "b"], "mean": [0.5], "std": [0.25],
              "input_shape": [1, 16, 16]}  # fmt: skip
    run = Run(tmp_path, None, model, config)
    client = TestClient(create_app(run))
    upload = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16), "u1")))
    sent = client.post("/api/predict", files={"image": ("n.png", upload, "image/png")})
    image = sent.json()["image"]
    pixels, _ = read_upload(upload, "n.png", run.input_shape)
    ins, outs = every_call(model, run.preprocess(pixels))
    assert [len(outs[n]) for n in ("stem", "block.0", "block.2", "act")] == [1, 2, 2, 2]
    info = client.get("/api/model").json()
    rows = [r["label"] for r in info["architecture"]["rows"]]
    assert {"block.0", "block.0 #2", "act", "act #2"} <= set(rows) & set(info["maps"])
    for name in ("block.0", "block.1", "block.2", "act"):
        for call, truth in enumerate(outs[name], 1):
            layer = name if call == 1 else f"{name} #{call}"
            maps = client.get("/api/features", params={"image": image, "layer": layer}).json()
            assert (maps["layer"], maps["channels"], maps["h"]) == (layer, 4, truth.shape[1])
            assert maps["min"] == pytest.approx(truth.amin((1, 2)).tolist(), abs=1e-6)
            assert maps["max"] == pytest.approx(truth.amax((1, 2)).tolist(), abs=1e-6)
            step = float(truth.amax() - truth.amin()) / 255  # one byte of the widest map
            np.testing.assert_allclose(decoded(maps), truth.numpy(), atol=step / 2 + 1e-6)
    fields = {(r.name, r.call): r.receptive_field for r in cnnlab.summary(model, (1, 16, 16)).rows}
    for call, (x, y) in enumerate(zip(ins["block.0"], outs["block.0"], strict=True), 1):
        suffix = "" if call == 1 else f" #{call}"
        i, j = y.shape[1] - 1, 1  # the bottom row reads the padding
        query = {"image": image, "layer": "block.0" + suffix, "channel": 2, "row": i, "col": j}
        t = client.get("/api/trace", params=query).json()
        window = F.pad(x, (1, 1, 1, 1))[:, i : i + 3, j : j + 3]  # (C, 3, 3): this call's input
        np.testing.assert_allclose(np.array(t["patch"]), window.numpy(), atol=1e-7)
        assert t["output"] == pytest.approx(float(y[2, i, j]), abs=1e-5)
        assert [s["layer"] for s in t["chain"]] == [f"block.{k}{suffix}" for k in range(3)]
        own = float(outs["block.2"][call - 1][2, i, j])
        assert t["chain"][-1]["value"] == pytest.approx(own, abs=1e-5)
        assert t["field"]["height"] == fields[("block.0", call)]
    # activation maximisation of the first call: explain's at that call (it was refused,
    # the server optimising only a module's last call)
    got = client.get("/api/actmax", params={"layer": "block.2", "channel": 0, "steps": 4})
    res = cnnlab.explain.activation_maximization(
        model, "block.2", [0], steps=4, input_size=(1, 16, 16), value_range=(-2.0, 2.0),
        restarts=2,
    )  # fmt: skip
    assert got.json()["activation"] == pytest.approx(float(res.activation[0]), abs=1e-6)


class RectifiedAfterRead(nn.Module):
    """`side` reads h, then h is rectified in place (ReLU(inplace=True)): the input `side`
    multiplied its filter with is h before the ReLU."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.side = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h = self.stem(x)
        s = self.side(h)
        h = self.act(h)
        return self.head((s + h).mean((2, 3)))


def test_a_conv_input_changed_in_place_later_is_traced_as_the_conv_read_it():
    torch.manual_seed(0)
    model = RectifiedAfterRead().eval()
    x = torch.randn(1, 1, 8, 8)
    seen = {}
    hook = model.side.register_forward_hook(lambda m, a, out: seen.setdefault("y", out.clone()))
    with torch.no_grad():
        model(x)
    hook.remove()
    net = Network.of(model, (1, 8, 8))
    probe = net.probe(x)
    assert (probe.inputs["side"] < 0).any()  # the input as read, before the in-place ReLU
    for f, i, j in [(0, 0, 0), (1, 3, 4), (3, 7, 7), (2, 5, 1)]:
        d = dot_product(net, probe, "side", f, i, j)
        own = float(seen["y"][0, f, i, j])
        assert abs(d["output"] - own) < 1e-5, (f, i, j, d["output"], own)
        assert abs(d["network"] - own) < 1e-6


SCALES_IN_PLACE = '''
import torch
from torch import nn


class Net(nn.Module):
    """Scales its input in place (`x *= 0.5`), a NumPy habit."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x *= 0.5
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def make_net():
    return Net()
'''


@pytest.fixture(scope="module")
def scaling_run(tmp_path_factory):
    """A run of a model from code that changes its input in place, one epoch on digits."""
    from cnnlab.cli import main

    root = tmp_path_factory.mktemp("inplace")
    (root / "net.py").write_text(SCALES_IN_PLACE)
    out = root / "run"
    args = ["--data", "digits", "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(["train", "--model", f"{root / 'net.py'}:make_net", *args]) == 0
    return out


def test_a_model_that_changes_its_input_in_place_is_explored_on_its_own_input(scaling_run):
    """Each pass must get the image as preprocessed: the probe ran on the input the
    prediction pass had already halved (the conv's activation 0.173 shown for the model's own
    0.233), and every Grad-CAM request halved the kept image again (the map drifted).
    Truth: the model on a fresh copy of the preprocessed image, a forward hook on its conv."""
    from cnnlab.explorer import create_app

    app = create_app(scaling_run)
    client = TestClient(app)
    ex = app.state.explorer
    image = client.post("/api/predict", data={"sample": 5}).json()["image"]
    x = ex.run.preprocess(ex.test.images[5:6])
    seen = {}
    hook = ex.run.model.conv.register_forward_hook(lambda m, a, y: seen.setdefault("y", y.clone()))
    with torch.no_grad():
        ex.run.model.eval()(x.clone())
    hook.remove()
    trace = client.get(
        "/api/trace", params={"image": image, "layer": "conv", "channel": 0, "row": 3, "col": 3}
    ).json()
    assert trace["network"] == pytest.approx(float(seen["y"][0, 0, 3, 3]), abs=1e-6)
    assert trace["output"] == pytest.approx(trace["network"], abs=1e-5)
    maps = [client.get("/api/heatmap", params={"image": image}).json()["map"] for _ in range(3)]
    assert maps[0] == maps[1] == maps[2]
    saliency = [
        client.get("/api/heatmap", params={"image": image, "method": "saliency"}).json()["map"]
        for _ in range(2)
    ]
    assert saliency[0] == saliency[1]
