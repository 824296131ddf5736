"""The explorer on models a spec does not build: a ConvNeXt-style block (channels last between
its permutes). Runs are made directly (`Run(path, None, model, config)`), as in
test_explorer.py. Truth: plain forward hooks on the same model."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

from cnnlab.explorer import create_app
from cnnlab.explorer.upload import read_upload
from cnnlab.train.rundir import Run

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


def decoded(maps: dict) -> np.ndarray:
    """/api/features' bytes back to floats: min + byte / 255 · (max − min), map by map."""
    data = np.frombuffer(base64.b64decode(maps["data"]), np.uint8)
    data = data.reshape(maps["n"], maps["h"], maps["w"])
    lo, hi = (np.array(maps[k])[:, None, None] for k in ("min", "max"))
    return lo + data / 255 * (hi - lo)


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


def test_channels_last_layers_are_no_feature_maps(tmp_path):
    """LayerNorm, Linear and GELU between the permutes hold (H, W, C): the model route marks
    them not spatial and offers no maps of them; the maps it offers are (C, H, W) as hooks see
    them (the depthwise conv: 64 channels of 4×4), and Grad-CAM refuses the channels-last one."""
    torch.manual_seed(0)
    client, image, run = served(tmp_path, ConvNeXtish(), [1, 16, 16])
    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 1, 16, 16), "u1"))
    truth = outputs(run.model, run.preprocess(pixels))
    assert tuple(truth["block.norm"].shape) == (4, 4, 64)  # the truth: channels last
    info = client.get("/api/model").json()
    last = {"block.norm", "block.pw1", "block.act", "block.pw2"}
    rows = {r["label"]: r["spatial"] for r in info["architecture"]["rows"]}
    assert not any(rows[n] for n in last)
    assert rows["block.dw"] and rows["block"]
    assert last.isdisjoint(info["maps"]) and last.isdisjoint(info["spatial"])
    for layer in ("stem", "block.dw", "block"):
        assert info["maps"][layer] == list(truth[layer].shape) == [64, 4, 4]
        maps = client.get("/api/features", params={"image": image, "layer": layer}).json()
        assert (maps["channels"], maps["h"], maps["w"]) == (64, 4, 4)
        step = float(truth[layer].amax() - truth[layer].amin()) / 255
        np.testing.assert_allclose(decoded(maps), truth[layer].numpy(), atol=step / 2 + 1e-5)
    for layer in last:
        refused = client.get("/api/features", params={"image": image, "layer": layer})
        assert refused.status_code == 400
    query = {"image": image, "method": "gradcam", "layer": "block.norm"}
    assert client.get("/api/heatmap", params=query).status_code == 400
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
