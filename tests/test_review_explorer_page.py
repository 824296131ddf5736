"""The dot-product panel in Chromium when the feature layer changes under a clicked unit, and
what it says its numbers are. Truths: the network's own outputs (forward hooks), the maps'
shapes (conv 0 is 28×28, conv 7 is 5×5), the browser's console.

A trace belongs to one conv: after a switch from conv 0's map, where row 26 exists, to conv 7's
5×5 map, a click on another channel asked the server for unit (c, 26, 26) of conv 7 (a 400 in
the console), and the panel kept conv 0's numbers and window box under conv 7's maps."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import torch

import cnnlab
from browser import FLAGS, need_chromium
from cnnlab.explorer import create_app
from cnnlab.train.rundir import load_run
from test_explorer import CLASSES, SPEC, shape_image, wait_until


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from cnnlab.train import TrainConfig, train

    root = tmp_path_factory.mktemp("review_explorer")
    for label, name in enumerate(CLASSES):
        (root / "data" / name).mkdir(parents=True)
        for i in range(12):
            shape_image(label, 100 * label + i).save(root / "data" / name / f"{i}.png")
    config = TrainConfig(epochs=1, batch_size=8, tta=False, val_fraction=0.1)
    train(cnnlab.load_spec(SPEC), str(root / "data"), root / "run", config)
    return root / "run"


@pytest.fixture(scope="module")
def server(run_dir):
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    serving = uvicorn.Server(uvicorn.Config(create_app(run_dir), log_level="warning"))
    thread = threading.Thread(target=serving.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not serving.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        serving.should_exit = True
        thread.join(10)
        sock.close()


def conv_output(run_dir, index: int, layer: str) -> torch.Tensor:
    """Test image `index`'s output of `layer` (C, H, W), from a plain forward hook."""
    run = load_run(run_dir)
    seen = {}
    module = run.model.get_submodule(layer)
    handle = module.register_forward_hook(lambda m, i, o: seen.setdefault("out", o[0].clone()))
    with torch.no_grad():
        run.model(run.preprocess(run.dataset("test").images[index : index + 1]))
    handle.remove()
    return seen["out"]


def test_switching_layers_under_a_clicked_unit(server, run_dir):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=need_chromium(), args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(f"error: {e}"))
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        try:
            page.goto(server)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.click("#samples figure >> nth=0")
            page.wait_for_selector("#feature-grid canvas")
            assert page.evaluate("state.featureLayer") == "0"
            options = page.locator("#feature-layer option").all_text_contents()
            assert options[:3] == ["0 Conv2d 4×28×28", "1 BatchNorm2d 4×28×28", "2 ReLU 4×28×28"]
            assert page.text_content("#channel-title").startswith("0 Conv2d, channel 0")
            page.click("#channel-view", position={"x": 270, "y": 270})  # near the corner
            wait_until(page, "state.trace !== null")
            assert min(page.evaluate("state.trace.index.slice(1)")) > 20  # no such row in 5×5
            page.select_option("#feature-layer", "7")  # conv 7: 5×5
            wait_until(page, "state.maps.h === 5")
            assert page.evaluate("state.trace") is None  # conv 0's numbers are gone
            assert page.text_content("#dot-network") == ""
            page.click("#feature-grid canvas >> nth=2")  # another channel: nothing to fetch
            page.click("#channel-view", position={"x": 275, "y": 2})  # row 0, column 4
            wait_until(page, "state.trace !== null && state.trace.layer === '7'")
            assert page.evaluate("state.trace.index") == [2, 0, 4]
            own = float(conv_output(run_dir, 0, "7")[2, 0, 4])  # before the ReLU
            assert float(page.text_content("#dot-network")) == pytest.approx(own, abs=1e-5)
            assert "before any BatchNorm or activation" in page.text_content("#dot-sum-table")
            assert "7" in page.text_content("#dot-chain li.shown")
            page.select_option("#feature-layer", "8")  # its ReLU: the same conv, trace kept
            shown = "document.querySelector('#dot-chain li.shown')"
            wait_until(page, f"{shown} !== null && {shown}.textContent.includes('(8)')")
            assert page.evaluate("state.trace.index") == [2, 0, 4]
        finally:
            browser.close()
    assert not problems, problems


MLP = {"name": "tiny-mlp", "input": [1, 28, 28],
       "layers": ["flatten", {"linear": 16}, "relu", {"linear": 2}]}  # fmt: skip


def test_a_model_without_maps_predicts_without_a_refusal(tmp_path):
    """An MLP has no (C, H, W) map: the page asked for the features of layer '' after every
    prediction (a 400 in the console) and said "Could not use this image" over the
    prediction it had just shown and the server's note that there is no Grad-CAM."""
    import uvicorn
    from playwright.sync_api import sync_playwright

    from cnnlab.train import TrainConfig, train

    for label, name in enumerate(CLASSES):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(6):
            shape_image(label, 100 * label + i).save(tmp_path / "data" / name / f"{i}.png")
    config = TrainConfig(epochs=1, batch_size=4, tta=False, val_fraction=0.2)
    train(cnnlab.load_spec(MLP), str(tmp_path / "data"), tmp_path / "run", config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    serving = uvicorn.Server(uvicorn.Config(create_app(tmp_path / "run"), log_level="warning"))
    thread = threading.Thread(target=serving.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not serving.started:
        time.sleep(0.05)
    problems: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=need_chromium(), args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda e: problems.append(f"error: {e}"))
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.goto(f"http://127.0.0.1:{sock.getsockname()[1]}/")
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.click("#samples figure >> nth=0")
            page.wait_for_selector("#bars li")
            wait_until(page, "document.getElementById('message').textContent !== 'computing…'")
            message = page.text_content("#message")
            browser.close()
    finally:
        serving.should_exit = True
        thread.join(10)
        sock.close()
    assert "Could not use" not in message and "no Grad-CAM" in message, message
    assert not problems, problems
