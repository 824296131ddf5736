"""The explorer's API refuses, with a 4xx JSON message, what it used to answer as if asked
something else: saliency for a named layer (saliency is the input gradient; the layer was
ignored and a map came back as if it were that layer's)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import cnnlab
from cnnlab.explorer import create_app
from test_explorer import CLASSES, SPEC, shape_image


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    from cnnlab.train import TrainConfig, train

    root = tmp_path_factory.mktemp("api")
    for label, name in enumerate(CLASSES):
        (root / "data" / name).mkdir(parents=True)
        for i in range(6):
            shape_image(label, 100 * label + i).save(root / "data" / name / f"{i}.png")
    config = TrainConfig(epochs=1, batch_size=4, tta=False, val_fraction=0.2)
    train(cnnlab.load_spec(SPEC), str(root / "data"), root / "run", config)
    return TestClient(create_app(root / "run"))


def test_saliency_with_a_layer_is_refused(client):
    image = client.post("/api/predict", data={"sample": "0"}).json()["image"]
    refused = client.get(f"/api/heatmap?image={image}&method=saliency&layer=0")
    assert refused.status_code == 400 and "takes no layer" in refused.json()["error"]
    plain = client.get(f"/api/heatmap?image={image}&method=saliency")
    assert plain.status_code == 200 and plain.json()["method"] == "saliency"
