"""The explorer API's refusals of a layer or channel say what exists: a name that is no
layer, a layer without a (C, H, W) map (its kind), the layers that have one, and a channel's
range. Truth: the tiny run's spec (explorer_runs.SPEC: conv, batchnorm, relu, maxpool, conv,
batchnorm, relu, conv, relu, gap, linear) and /api/model's own lists."""

from __future__ import annotations


def _image(client) -> str:
    return client.post("/api/predict", data={"sample": 0}).json()["image"]


def test_a_layer_without_maps_is_told_the_layers_with_maps(client):
    model = client.get("/api/model").json()
    image = _image(client)
    maps = list(model["maps"])
    listed = (
        ", ".join(maps) if len(maps) < 11 else ", ".join(maps[:8]) + f", … ({len(maps)} in all)"
    )
    for route in ("/api/features", "/api/actmax"):
        params = {"image": image, "layer": "9", "channel": 0}  # 9: gap, 8 values
        said = client.get(route, params=params).json()["error"]
        assert said.startswith("'9' (GlobalAvgPool2d) has no (C, H, W) map; layers with maps: ")
        assert said.endswith(listed), said
        params["layer"] = "conv9"
        said = client.get(route, params=params).json()["error"]
        assert said.startswith("'conv9' is no layer of this model; layers with maps: 0, 1, 2")
    said = client.get("/api/heatmap", params={"image": image, "layer": "9"}).json()["error"]
    assert said.endswith("choose one of: " + ", ".join(model["spatial"])), said


def test_a_channel_outside_a_layer_is_told_its_range(client):
    for route in ("/api/top", "/api/actmax"):
        said = client.get(route, params={"layer": "2", "channel": 4}).json()["error"]
        assert said == "channel 4 is outside 2's 4 channels (0..3)", said  # conv of 4 filters
