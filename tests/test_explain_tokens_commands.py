"""A vision transformer driven through the commands: `cnnlab explain`, the report's Grad-CAM
and the explorer's API take Grad-CAM's default on a ViT, its last attention's input (tokens
read as the map of their patches), not its patch embedding; each map is upsampled to the
image as a CNN's is. Truth: `explain.gradcam` at that layer, and Captum on the test's patch
map (tests/test_explain_tokens.py)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from cnnlab import explain
from cnnlab.cli import main
from cnnlab.inspect import default_layer
from cnnlab.train.rundir import load_run

pytest.importorskip("einops")  # MONAI's ViT needs it
pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

VIT_FILE = """
from torch import nn
from monai.networks.nets import ViT


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = ViT(in_channels=1, img_size=(8, 8), patch_size=(2, 2), hidden_size=16,
                       mlp_dim=32, num_layers=2, num_heads=2, classification=True,
                       num_classes=10, spatial_dims=2)

    def forward(self, x):
        return self.net(x)[0]


def make():
    return Net()
"""

LAYER = "net.blocks.1.norm1"  # the last attention's input: (B, 1 + 4·4, 16)


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory, one_thread):
    from tiny_nets import imported_run

    return imported_run(
        tmp_path_factory.mktemp("vit"), VIT_FILE, data="digits", input_shape=(1, 8, 8)
    )


def test_explain_writes_the_grad_cam_of_the_last_attentions_input(vit_run, tmp_path):
    model = load_run(vit_run).model.eval()
    x = torch.randn(2, 1, 8, 8)
    assert default_layer(model, x) == LAYER
    Image.new("L", (8, 8), 128).save(tmp_path / "x.png")
    assert main(["explain", str(vit_run), str(tmp_path / "x.png"), "--out", str(tmp_path)]) == 0
    (written,) = tmp_path.glob("x-*_gradcam_*.png")
    assert "_gradcam_net.blocks.1.norm1_class" in written.name


def test_the_reports_grad_cam_is_at_the_last_attentions_input(vit_run):
    from cnnlab.report import facts
    from cnnlab.report.sources import Budget, Sources

    run = load_run(vit_run)
    src = Sources(vit_run, run, None, Budget(gradcam_images=2))
    assert src.gradcam_layer == LAYER
    groups = facts._gradcam(src)
    assert {g.layer for g in groups} == {LAYER}
    heat = next(g.heat for g in groups if len(g.heat))
    _, x, _ = src.test
    assert heat.shape[1:] == x.shape[2:]  # the 4×4 patch map upsampled to the 8×8 image


def test_the_explorers_grad_cam_is_at_the_last_attentions_input(vit_run):
    from fastapi.testclient import TestClient

    from cnnlab.explorer import create_app

    client = TestClient(create_app(vit_run))
    model = client.get("/api/model").json()
    assert model["cam_layer"] == LAYER and model["spatial"][LAYER] == [16, 4, 4]
    image = client.post("/api/predict", data={"sample": 0}).json()["image"]
    heat = client.get(f"/api/heatmap?image={image}&method=gradcam").json()
    assert heat["layer"] == LAYER and len(heat["map"]) == 8  # the image's 8 rows
    asked = client.get(f"/api/heatmap?image={image}&method=gradcam&layer={LAYER}").json()
    assert asked["map"] == heat["map"]
    run = load_run(vit_run)
    x = run.preprocess(run.dataset("test").images[:1])
    assert explain.gradcam(run.model, x, layer=LAYER).shape == (1, 8, 8)


def test_explain_searches_the_feeding_maps_once(vit_run, tmp_path, monkeypatch):
    """`cnnlab explain` finds the maps (a forward and a backward) and then the default layer
    from them: one search, where the default layer's own search ran it again."""
    from cnnlab.inspect import reached

    searches, search = [], reached.zero_gradient
    monkeypatch.setattr(
        reached, "zero_gradient", lambda *a, **k: searches.append(1) or search(*a, **k)
    )
    Image.new("L", (8, 8), 128).save(tmp_path / "x.png")
    assert main(["explain", str(vit_run), str(tmp_path / "x.png"), "--out", str(tmp_path)]) == 0
    assert len(searches) == 1


def test_the_explorer_lists_every_blocks_token_layer_with_its_patch_map(vit_run):
    """As every map of a CNN: each block's attention input (C, h, w), each one Grad-CAM can
    be asked for. Truth: `explain.gradcam` at that layer on the same image."""
    from fastapi.testclient import TestClient

    from cnnlab.explorer import create_app
    from cnnlab.explorer.panels import heatmap

    client = TestClient(create_app(vit_run))
    spatial = client.get("/api/model").json()["spatial"]
    tokens = {k: v for k, v in spatial.items() if k.startswith("net.blocks")}
    assert tokens == {"net.blocks.0.norm1": [16, 4, 4], "net.blocks.1.norm1": [16, 4, 4]}
    run = load_run(vit_run)
    x = run.preprocess(run.dataset("test").images[:1])
    image = client.post("/api/predict", data={"sample": 0}).json()["image"]
    for layer in tokens:
        got = client.get(f"/api/heatmap?image={image}&method=gradcam&layer={layer}").json()
        assert got["layer"] == layer
        assert got["map"] == heatmap(explain.gradcam(run.model, x, layer=layer)[0])


def test_the_reports_grad_cam_layer_searches_the_feeding_maps_once(vit_run, monkeypatch):
    from cnnlab.inspect import reached
    from cnnlab.report.sources import Budget, Sources

    searches, search = [], reached.zero_gradient
    monkeypatch.setattr(
        reached, "zero_gradient", lambda *a, **k: searches.append(1) or search(*a, **k)
    )
    src = Sources(vit_run, load_run(vit_run), None, Budget(gradcam_images=2))
    assert src.gradcam_layer == LAYER
    assert len(searches) == 1
