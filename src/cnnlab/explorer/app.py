"""The explorer's web app: one page (static/, no build step, nothing from the network) and
the small JSON API it calls, for one run. `create_app(run)` -> a FastAPI (ASGI) app.

Requests never name a file: images come as uploads or as test-set indexes, and the only
files read are the run directory's and its data set's (both through cnnlab's own readers)
and this package's static files. The model is used by one request at a time (a lock):
explain methods switch its parameters' requires_grad for the duration of a call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import mimetypes
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from cnnlab.data import ImageSet
from cnnlab.errors import CnnlabError
from cnnlab.explain import ExplainError, activation_maximization, gradcam, saliency
from cnnlab.explorer import panels
from cnnlab.explorer.probe import Network, Probe, dot_product
from cnnlab.explorer.top import cached_top_images
from cnnlab.explorer.upload import (
    ACCEPT,
    FORMAT_NAMES,
    MAX_BYTES,
    UploadError,
    colour_note,
    frames_note,
    read_upload,
)
from cnnlab.inspect import default_layer, inspecting
from cnnlab.inspect.progress import Progress
from cnnlab.inspect.tokens import cam_layers
from cnnlab.train.evaluate import predict_logits, resize_note
from cnnlab.train.rundir import Run, load_run

STATIC = Path(__file__).parent / "static"
KEEP_IMAGES = 32  # probed images kept for clicks (one image's maps: ~1 MB for `fast`)
SECURITY_HEADERS = {
    # everything the page loads comes from this server; images also as data: URLs
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class ImageGone(LookupError):
    """An image id the server does not keep (evicted, or the server restarted since the page
    sent it): answered 404 with `"resend": true`, and the page sends its image again."""


class Explorer:
    """One run, its network map, its test set, and the images probed so far (an LRU)."""

    def __init__(self, run: Run):
        self.run = run
        self.test = run.dataset("test") if run.data is not None else _no_images(run)
        self.lock = threading.Lock()
        sample = run.preprocess(self.test.images[:1]) if len(self.test) else None
        self.net = Network.of(run.model, run.input_shape, sample)
        self.cam_layer = _cam_layer(run.model, run.input_shape, sample, self.net.spatial)
        x = torch.zeros(1, *run.input_shape) if sample is None else sample
        # the maps, and a transformer's token layers: each block's attention input (C, h, w)
        self.cam_layers = cam_layers(run.model, x, self.net.spatial, self.cam_layer)
        self.architecture = panels.architecture(self.net)
        self.probes: OrderedDict[str, tuple[torch.Tensor, Probe]] = OrderedDict()
        self.actmax: dict[tuple[str, int, int], dict[str, Any]] = {}
        self._top: dict[str, Any] | None = None

    # images ---------------------------------------------------------------------------------
    def probe(self, pixels: torch.Tensor) -> tuple[str, Probe]:
        """Probe uint8 (1, C, H, W) pixels (or take the kept probe); its id is their hash."""
        image_id = hashlib.sha256(pixels.numpy().tobytes()).hexdigest()[:16]
        if image_id in self.probes:
            self.probes.move_to_end(image_id)
            return image_id, self.probes[image_id][1]
        x = self.run.preprocess(pixels)
        # Two passes, each for its panel: the probe's in fp32, so the dot-product panel's
        # activations are what sum(weights × inputs) + bias gives exactly; the prediction in
        # the run's precision (bf16 if it trained so), as eval and predict name the class.
        # x is kept for every later click: predict_logits, the probe and the heat maps feed
        # the model a copy of it (a model may change its input in place, `x *= 0.5`).
        logits = predict_logits(self.run.model, x, autocast=self.run.autocast)[0]
        probe = dataclasses.replace(self.net.probe(x), logits=logits)
        self.probes[image_id] = (pixels, probe)
        while len(self.probes) > KEEP_IMAGES:
            self.probes.popitem(last=False)
        return image_id, probe

    def kept(self, image_id: str) -> tuple[torch.Tensor, Probe]:
        if image_id not in self.probes:
            raise ImageGone(f"image {image_id!r} is no longer kept; send it again")
        self.probes.move_to_end(image_id)  # least recently *used* goes first
        return self.probes[image_id]

    def sample(self, index: int) -> torch.Tensor:
        if not len(self.test):
            raise ExplainError("the run has no test images (imported without --data); upload one")
        if not 0 <= index < len(self.test):
            raise ExplainError(f"sample {index} is outside the test set 0..{len(self.test) - 1}")
        return self.test.images[index : index + 1]

    def heat(self, probe: Probe, method: str, layer: str | None, target: int | None) -> dict:
        """Grad-CAM (at `layer`, None = the page's default, `cam_layer`, which the answer
        names) or saliency of the probed image, for `target` (None: the class
        predicted in the run's precision, the class shown; the map itself is computed in
        fp32, as `cnnlab explain` computes it)."""
        if target is None:
            target = int(probe.logits.argmax())
        if method == "saliency":
            if layer is not None:  # an input gradient: a layer asked for would be ignored
                raise ExplainError(
                    f"saliency is the gradient at the input and takes no layer ({layer!r}); "
                    "the layer is Grad-CAM's (method=gradcam)"
                )
            m = saliency(self.run.model, probe.x, target)[0]
            return {"method": method, "map": panels.heatmap(m / m.max().clamp_min(1e-12))}
        if method != "gradcam":
            raise ExplainError(f"unknown method {method!r}; use gradcam or saliency")
        if layer is not None and layer not in self.cam_layers:
            raise ExplainError(
                f"{layer!r} is no layer with a (C, H, W) map of more than one pixel, which "
                f"Grad-CAM weighs; choose one of: {_first(list(self.cam_layers))}"
            )
        layer = layer or self.cam_layer
        m = gradcam(self.run.model, probe.x, target, layer)[0]
        return {"method": method, "layer": layer, "map": panels.heatmap(m)}

    def prediction_heat(self, probe: Probe, layer: str | None) -> tuple[dict | None, str]:
        """(Grad-CAM for a prediction, None and why not where there is none): the prediction
        stands without it. A model with no map layer (an MLP), or one whose maps Grad-CAM
        cannot read (a backbone run under torch.no_grad()), answered 400 for the whole
        prediction, probabilities included."""
        if not self.net.spatial:
            return None, "no Grad-CAM: the model has no layer with a (C, H, W) map, H·W > 1"
        if layer is not None and layer not in self.cam_layers:  # a wrong name asked for: 400
            return self.heat(probe, "gradcam", layer, None), ""
        try:
            return self.heat(probe, "gradcam", layer, None), ""
        except ExplainError as err:
            return None, f"no Grad-CAM: {err}"

    # the deep-layer panel ---------------------------------------------------------------------
    def top_layers(self) -> list[str]:
        """The layers with top images: `Network.block_ends` (a ReLU shared by blocks has them
        at each of its calls: `relu`, `relu #2`)."""
        return self.net.block_ends()

    def top(self, progress: Progress | None = None) -> dict[str, Any]:
        """The cached top test images per channel of each conv block's last layer, keyed by
        its call's label. progress: the batches of a first computation (`top_images`)."""
        if not len(self.test):
            raise LookupError("the run has no test images (it was imported without --data)")
        if self._top is None:
            images = self.run.preprocess(self.test.images)
            self._top = cached_top_images(
                self.run.path,
                self.run.model,
                images,
                str(self.run.data),
                self.top_layers(),
                progress=progress,
                code=getattr(self.run.source, "sha256", None),  # the code as it is now
                dims=self.net.dims,  # a channels-last layer's channels: ranked by out[..., c]
            )
        return self._top


# Routes return JSONResponse: it serialises with json.dumps, where FastAPI's own encoder walks
# every float in Python (a last-layer trace of `fast`, 3,500 floats: 10 ms of a click).


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(run: Run | str | Path) -> FastAPI:
    """The explorer for `run` (a Run or a run directory). Routes: see README (explorer)."""
    ex = Explorer(run if isinstance(run, Run) else load_run(run))
    app = FastAPI(title="cnnlab explorer", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.explorer = ex
    # the page is ES modules, which a browser refuses unless served as JavaScript; StaticFiles
    # asks mimetypes, which reads the system's table (a Windows registry can say text/plain)
    mimetypes.add_type("text/javascript", ".js")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def limits_and_headers(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BYTES + 64 * 1024):
            return _error(
                413, f"request body over {MAX_BYTES // 2**20} MiB; upload a smaller image"
            )
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(CnnlabError)
    async def bad_input(request: Request, error: CnnlabError) -> JSONResponse:
        return _error(getattr(error, "status", 400), str(error))

    @app.exception_handler(LookupError)
    async def gone(request: Request, error: LookupError) -> JSONResponse:
        response = _error(404, str(error.args[0]) if error.args else "not found")
        if isinstance(error, ImageGone):  # the page re-sends the image and asks again
            response = JSONResponse({"error": str(error), "resend": True}, status_code=404)
        return response

    # FastAPI's own refusals answer as ours do ({"error": message}), not {"detail": [...]}
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return _error(422, "; ".join(map(_invalid_field, error.errors())))

    @app.exception_handler(HTTPException)
    async def refused(request: Request, error: HTTPException) -> Response:
        if error.status_code == 404 and _browsing(request):
            return _no_page(request.url.path)
        response = _error(error.status_code, str(error.detail))
        response.headers.update(error.headers or {})  # a 405's Allow
        return response

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    _routes(app, ex)
    return app


def _routes(app: FastAPI, ex: Explorer) -> None:
    """The API (README, explorer), one group of routes per panel, one short function each."""
    for group in (_model_routes, _prediction_routes, _feature_routes, _deep_layer_routes):
        group(app, ex)
    _geometry_routes(app)


def _model_routes(app: FastAPI, ex: Explorer) -> None:
    """The architecture column and the input picker: the run's model, its test images."""
    run = ex.run

    @app.get("/api/model")
    def model() -> dict[str, Any]:
        c, h, w = run.input_shape
        return {
            "name": run.name,
            "input_shape": [c, h, w],
            "classes": list(run.classes),
            "data": None if run.data is None else str(run.data),  # None: imported without
            "test_images": len(ex.test),
            "architecture": ex.architecture,
            "convs": [{"conv": k.conv, "bn": k.bn, "act": k.act} for k in ex.net.chains],
            "spatial": {n: list(s) for n, s in ex.cam_layers.items()},
            "cam_layer": ex.cam_layer,  # explain's default: the last map the logits read
            "maps": {call: list(s) for call, s in ex.net.maps.items()},  # one per call
            # each map's module type: a container the summary gives no row (a block whose
            # forward only calls its nn.Sequential) was listed as "dw.body 32×7×7", no kind
            "kinds": {call: type(ex.net.module(call)).__name__ for call in ex.net.maps},
            "top_layers": ex.top_layers(),
            # the file chooser's filter and heading, from the formats the server reads,
            # and the largest file it takes: the page refuses a larger one before sending it
            "upload": {"accept": ACCEPT, "formats": list(FORMAT_NAMES), "max_bytes": MAX_BYTES},
        }

    @app.get("/api/samples")
    def samples(offset: int = Query(0, ge=0), count: int = Query(24, ge=1, le=200)) -> dict:
        end = min(offset + count, len(ex.test))
        return {
            "total": len(ex.test),
            "samples": [
                {
                    "index": i,
                    "label": int(ex.test.labels[i]),
                    "class": run.classes[int(ex.test.labels[i])],
                    "image": panels.png_url(ex.test.images[i]),
                }
                for i in range(offset, end)
            ],
        }


def _prediction_routes(app: FastAPI, ex: Explorer) -> None:
    """The prediction panel: probabilities and softmax steps, Grad-CAM and saliency."""
    run = ex.run

    @app.post("/api/predict")
    def predict(  # a plain def: FastAPI runs it in a worker thread, off the event loop
        image: Annotated[UploadFile | None, File()] = None,
        sample: Annotated[int | None, Form()] = None,
        layer: Annotated[str | None, Form()] = None,
        top: Annotated[int, Form(ge=1, le=1000)] = 5,
    ) -> JSONResponse:
        note = ""  # an upload of another size than the run's says it was resized
        if image is not None:
            data = image.file.read(MAX_BYTES + 1)  # one byte more than allowed: too large
            name = image.filename or "the upload"
            pixels, size = read_upload(data, name, run.input_shape)
            notes = (frames_note(data, name), resize_note([(name, size)], run.input_shape[1:]),
                     colour_note(data, name, run.input_shape[0]))  # fmt: skip
            note = "; ".join(n for n in notes if n)
        elif sample is not None:
            pixels = ex.sample(sample)
        else:
            raise UploadError("send a form field `image` (a PNG/JPEG file) or `sample` (index)")
        with ex.lock:  # saliency is left to /api/heatmap: a third of the time, seen on demand
            image_id, probe = ex.probe(pixels)
            heat, no_map = ex.prediction_heat(probe, layer or None)
        result = panels.softmax_steps(probe.logits, run.classes, top)
        result.update(image=image_id, input=panels.png_url(pixels[0]), gradcam=heat and heat["map"])
        if heat is None:
            note = f"{note}; {no_map}" if note else no_map
        if note:
            result["note"] = note
        if sample is not None and image is None:
            result["true_class"] = run.classes[int(ex.test.labels[sample])]
        return JSONResponse(result)

    @app.get("/api/heatmap")
    def heatmap(
        image: str, method: str = "gradcam", layer: str | None = None, target: int | None = None
    ) -> JSONResponse:
        if target is not None and not 0 <= target < len(run.classes):
            raise ExplainError(f"target {target} is outside the classes 0..{len(run.classes) - 1}")
        with ex.lock:
            return JSONResponse(ex.heat(ex.kept(image)[1], method, layer or None, target))


def _feature_routes(app: FastAPI, ex: Explorer) -> None:
    """The feature-map panel and the dot product behind a clicked activation."""

    @app.get("/api/features")
    def features(image: str, layer: str, limit: int = Query(256, ge=1, le=1024)) -> JSONResponse:
        with ex.lock:
            probe = ex.kept(image)[1]
        if layer not in probe.outputs:
            raise ExplainError(_no_map(ex, layer))
        maps = probe.outputs[layer]  # (C, H, W)
        encoded = panels.encode_maps(maps[:limit])
        return JSONResponse({"layer": layer, "channels": maps.shape[0], **encoded})

    @app.get("/api/trace")
    def trace(image: str, layer: str, channel: int, row: int, col: int) -> JSONResponse:
        with ex.lock:  # reads the model's weights, which explain calls briefly unfreeze
            return JSONResponse(dot_product(ex.net, ex.kept(image)[1], layer, channel, row, col))


def _deep_layer_routes(app: FastAPI, ex: Explorer) -> None:
    """The deep-layer panel: a channel's top test images, its activation maximisation."""
    run = ex.run

    @app.get("/api/top")
    def top(layer: str, channel: int = Query(ge=0)) -> dict[str, Any]:
        with ex.lock:
            found = ex.top()["layers"]
        layers = ex.top_layers()
        if layer not in layers:
            raise ExplainError(f"no top images for {layer!r}; layers: {_first(layers) or NO_MAPS}")
        ranked = found[layer]
        if channel >= len(ranked["index"]):
            raise ExplainError(_no_channel(layer, channel, len(ranked["index"])))
        index, value = ranked["index"][channel], ranked["value"][channel]
        return {
            "layer": layer,
            "channel": channel,
            "images": [
                {
                    "index": i,
                    "value": v,
                    "class": run.classes[int(ex.test.labels[i])],
                    "image": panels.png_url(ex.test.images[i]),
                }
                for i, v in zip(index, value, strict=True)
            ],
        }

    @app.get("/api/actmax")
    def actmax(layer: str, channel: int = Query(ge=0), steps: int = Query(64, ge=1, le=512)):
        key = (layer, channel, steps)  # steps too: 512 steps were answered with 8 steps' image
        if key not in ex.actmax:
            if layer not in ex.net.maps:
                raise ExplainError(_no_map(ex, layer))
            if channel >= ex.net.maps[layer][0]:
                raise ExplainError(_no_channel(layer, channel, ex.net.maps[layer][0]))
            pixels = ex.test.images[:256] if len(ex.test) else _black_and_white(run)
            lo, hi = (float(v) for v in run.preprocess(pixels).aminmax())
            with ex.lock:
                res = activation_maximization(
                    run.model, layer, [channel], steps=steps,  # the call: `relu #2`
                    input_size=run.input_shape, value_range=(lo, hi), restarts=2,
                )  # fmt: skip
            img = (res.images[0] - lo) / max(hi - lo, 1e-12)  # back to [0, 1] for display
            ex.actmax[key] = {
                "layer": layer, "channel": channel, "steps": steps,
                "activation": float(res.activation[0]),  # the channel's centre unit
                "image": panels.png_url(img),
            }  # fmt: skip
        return ex.actmax[key]


NO_MAPS = "none (the model has no layer with a (C, H, W) map)"  # an MLP: no empty list


def _no_map(ex: Explorer, layer: str) -> str:
    """Why `layer` has no feature maps, and the layers that have (the first few: a deep
    model has hundreds; /api/model lists them all)."""
    shown = _first(list(ex.net.maps)) or NO_MAPS
    if layer in ex.net.calls:
        kind = type(ex.net.module(layer)).__name__
        return f"{layer!r} ({kind}) has no (C, H, W) map; layers with maps: {shown}"
    return f"{layer!r} is no layer of this model; layers with maps: {shown}"


def _first(names: list[str], k: int = 8) -> str:
    """The names, or the first k and how many there are in all when there are k + 3 or more."""
    if len(names) < k + 3:
        return ", ".join(names)
    return ", ".join(names[:k]) + f", … ({len(names)} in all)"


def _no_channel(layer: str, channel: int, channels: int) -> str:
    return f"channel {channel} is outside {layer}'s {channels} channels (0..{channels - 1})"


def _geometry_routes(app: FastAPI) -> None:
    """The geometry playground (§2.2–2.4): no run needed."""

    @app.get("/api/geometry")
    def geometry_panel(
        size: int = Query(7, ge=1, le=64),
        kernel: int = Query(3, ge=1, le=15),
        padding: str = "valid",
        stride: int = Query(1, ge=1, le=16),
        dilation: int = Query(1, ge=1, le=8),
        in_channels: int = Query(1, ge=1, le=4096),
        filters: int = Query(1, ge=1, le=4096),
    ) -> JSONResponse:
        return JSONResponse(
            panels.playground(size, kernel, padding, stride, dilation, in_channels, filters)
        )


def _browsing(request: Request) -> bool:
    """A page asked for by a browser (a mistyped address, an old bookmark), not by the API:
    it gets a page that says where the explorer is, not `{"error": "Not Found"}`."""
    path = request.url.path
    wants_html = "text/html" in request.headers.get("accept", "")
    return request.method == "GET" and wants_html and not path.startswith(("/api/", "/static/"))


def _no_page(path: str) -> HTMLResponse:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not found: cnnlab '
        f"explorer</title></head><body><h1>No page at {html.escape(path)}</h1><p>The explorer "
        'has one page: <a href="/">open the explorer</a>.</p></body></html>'
    )
    return HTMLResponse(body, status_code=404)


def _invalid_field(found: dict[str, Any]) -> str:
    """One parameter FastAPI refused: "channel = 'one': Input should be a valid integer"."""
    name = ".".join(str(part) for part in found["loc"][1:]) or str(found["loc"][0])
    given = f" = {found['input']!r}" if found.get("input") is not None else ""
    return f"{name}{given}: {found['msg']}"


def _cam_layer(model, input_shape, sample, spatial: dict) -> str | None:
    """The page's default Grad-CAM layer, explain's (`inspect.default_layer`): the last map
    layer the logits are computed from. The last map alone was a decoder's in a model that
    keeps a reconstruction for its loss, and every prediction answered 400 ('the logits do
    not depend on layer'). None for a model with no map layer."""
    if not spatial:
        return None
    x = torch.zeros(1, *input_shape) if sample is None else sample
    with inspecting(model):
        return default_layer(model, x)


def _no_images(run: Run) -> ImageSet:
    """The test set of a run imported without data: none; uploads and drawings still work."""
    c, h, w = run.input_shape
    empty = torch.zeros(0, c, h, w, dtype=torch.uint8)
    return ImageSet(empty, torch.zeros(0, dtype=torch.int64), run.classes, "no data")


def _black_and_white(run: Run) -> torch.Tensor:
    """Two images, all 0 and all 255: the range of the inputs where there are no images."""
    pixels = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)  # (2, 1, 1, 1)
    return pixels.expand(-1, *run.input_shape)  # (2, C, H, W): preprocess takes the run's shape
