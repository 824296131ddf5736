"""The explorer tests' tiny runs and servers: an image folder of filled squares and rings whose
two class names are HTML (`<script>` and `<img src=x onerror=...>`, so every test that shows a
class also checks it stays text), the conv net trained on it, a real uvicorn server for an app,
and the truths they share (the network's own activations from forward hooks). The fixtures
built from them are in conftest.py; explorer_page serves a fresh app of its own, for a test
that holds its answers (Held) or needs another run."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

CLASSES = ("<script>", "<img src=x onerror=alert(1)>")  # folder names hold no '/'
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SPEC = {
    "name": "tiny-explorer",
    "input": [1, 28, 28],
    "layers": [
        {"conv": {"filters": 4, "kernel": 3, "padding": "same"}},
        "batchnorm",
        "relu",
        {"maxpool": 2},
        {"conv": {"filters": 6, "kernel": 3, "stride": 2, "padding": 1}},
        "batchnorm",
        "relu",
        {"conv": {"filters": 8, "kernel": 3}},
        "relu",
        "gap",
        {"linear": 2},
    ],
}


def shape_image(kind: int, seed: int) -> Image.Image:
    """28×28 grey: a filled square (class 0) or a ring (class 1) at a random place."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (28, 28), 0)
    x, y = (int(v) for v in rng.integers(3, 13, 2))
    draw = ImageDraw.Draw(img)
    if kind == 0:
        draw.rectangle([x, y, x + 11, y + 11], fill=230)
    else:
        draw.ellipse([x, y, x + 12, y + 12], outline=230, width=2)
    return img


def shapes_run(root: Path, per_class: int, spec: dict = SPEC, **config) -> Path:
    """A run in root/run of `spec` trained one epoch (TrainConfig `config`, no TTA) on
    root/data: `per_class` shape images in each of the two HTML-named class folders."""
    import cnnlab
    from cnnlab.train import TrainConfig, train

    for label, name in enumerate(CLASSES):
        (root / "data" / name).mkdir(parents=True)
        for i in range(per_class):
            shape_image(label, 100 * label + i).save(root / "data" / name / f"{i}.png")
    train(cnnlab.load_spec(spec), str(root / "data"), root / "run",
          TrainConfig(epochs=1, tta=False, **config))  # fmt: skip
    return root / "run"


def png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def own_activations(run, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every leaf module's output on one image, from plain forward hooks (the truth)."""
    seen, handles = {}, []
    for name, m in run.model.named_modules():
        if name and not m._modules:
            hook = lambda m, i, o, name=name: seen.__setitem__(name, o[0].detach().clone())  # noqa: E731
            handles.append(m.register_forward_hook(hook))
    with torch.no_grad():
        run.model(run.preprocess(pixels))
    for h in handles:
        h.remove()
    return seen


def conv_output(run_dir, index: int, layer: str) -> torch.Tensor:
    """Test image `index`'s output of `layer` (C, H, W), from a plain forward hook."""
    from cnnlab.train.rundir import load_run

    run, seen = load_run(run_dir), {}
    module = run.model.get_submodule(layer)
    # update returns None: a hook's returned value would replace the layer's output
    handle = module.register_forward_hook(lambda m, i, o: seen.update(out=o[0].clone()))
    with torch.no_grad():
        run.model(run.preprocess(run.dataset("test").images[index : index + 1]))
    handle.remove()
    return seen["out"]


@contextmanager
def serving(app) -> Iterator[str]:
    """A real uvicorn server for `app` on 127.0.0.1, a free port (as `cnnlab serve` binds
    it), in a thread of this process; its URL; stopped on leaving."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 30 s"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class Held:
    """A gate on an app's answers to the requests whose path and query contain one of `parts`
    (put on the app by explorer_page, before it is served): open at first; close() holds each
    such request received (its answer waits) until open(). A test so fixes which answer
    reaches the page first, however loaded the machine is, where a delay only makes one order
    likely."""

    def __init__(self, *parts: str):
        self.parts = parts
        self.gate, self.held = threading.Event(), []
        self.gate.set()

    def install(self, app) -> None:
        import asyncio

        @app.middleware("http")
        async def hold(request, call_next):
            url = f"{request.url.path}?{request.url.query}"
            if any(part in url for part in self.parts) and not self.gate.is_set():
                self.held.append(url)
                while not self.gate.is_set():
                    await asyncio.sleep(0.02)
            return await call_next(request)

    def close(self) -> None:
        self.held.clear()
        self.gate.clear()

    def open(self) -> None:
        self.gate.set()

    def wait_held(self, count: int, timeout: float = 30) -> None:
        """Until `count` requests were held since close(): the page has sent them."""
        deadline = time.monotonic() + timeout
        while len(self.held) < count:
            assert time.monotonic() < deadline, f"{len(self.held)} of {count} requests held"
            time.sleep(0.02)


@contextmanager
def explorer_page(run_dir, *gates: Held, width: int = 1400):
    """(page, problems) of browser.opened: the page of a fresh app on `run_dir`, served, its
    answers held by `gates` (a middleware cannot be added to the shared `server`'s app, which
    has started)."""
    from browser import opened
    from cnnlab.explorer import create_app

    app = create_app(run_dir)
    for gate in gates:
        gate.install(app)
    with serving(app) as url, opened(url, width) as (page, problems):
        yield page, problems


def wait_until(page, condition: str, timeout: float = 30) -> None:
    """Poll a JS expression (page.wait_for_function evaluates strings, which the page's
    Content-Security-Policy forbids; page.evaluate goes through the debugger protocol)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.05)


def decoded(maps: dict) -> np.ndarray:
    """/api/features' bytes back to floats: min + byte / 255 · (max − min), map by map."""
    data = np.frombuffer(base64.b64decode(maps["data"]), np.uint8)
    data = data.reshape(maps["n"], maps["h"], maps["w"])
    lo, hi = (np.array(maps[k])[:, None, None] for k in ("min", "max"))
    return lo + data / 255 * (hi - lo)
