"""The explorer's command and page: `cnnlab serve`'s options and socket, a real server under
load, and the page driven in Debian's Chromium (Playwright) against a real server, on the tiny
run of conftest.py. Truths: the network's own outputs (forward hooks), Pillow's reading of the
uploaded file, data.image.IMAGE_FORMATS, the kernel's socket options, the browser's console.
The browser's screenshot is kept in test-artifacts/explorer.png.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from browser import FLAGS, need_chromium, opened
from cnnlab.data.image import IMAGE_FORMATS
from cnnlab.explorer.upload import read_upload
from cnnlab.train.rundir import load_run
from explorer_runs import (
    ARTIFACTS,
    CLASSES,
    conv_output,
    explorer_page,
    own_activations,
    shape_image,
    wait_until,
)

STATIC = Path(__file__).parents[1] / "src" / "cnnlab" / "explorer" / "static"


def test_serve_warns_before_binding_another_host(run_dir, capsys):
    from cnnlab.cli import main

    assert main(["serve", str(run_dir), "--host", "203.0.113.7", "--port", "0"]) == 2
    err = capsys.readouterr().err  # TEST-NET-3: a non-local address this machine lacks
    assert "warning: binding 203.0.113.7" in err and "cannot bind 203.0.113.7" in err


def test_serve_refuses_threads_below_one(tmp_path, capsys):
    """`--threads -3` was taken as 1 without a word; every other count option is refused."""
    from cnnlab.cli import main

    assert main(["serve", str(tmp_path), "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert "--threads" in err and len(err.strip().splitlines()) == 1


def test_bounded_load_has_no_5xx(server):
    """40 requests from 8 concurrent clients (predict and click), each bounded by a timeout;
    p50/p95 are printed (benchmarks/explorer_latency.py runs the 200-request version)."""
    import httpx

    image = httpx.post(server + "api/predict", data={"sample": 0}, timeout=60).json()["image"]
    urls = [
        f"{server}api/trace?image={image}&layer=0&channel=1&row={i % 28}&col=3" for i in range(64)
    ]

    def hit(n: int) -> tuple[int, float]:
        start = time.perf_counter()
        if n % 4 == 0:
            r = httpx.post(server + "api/predict", data={"sample": n % 8}, timeout=60)
        else:
            r = httpx.get(urls[n], timeout=60)
        return r.status_code, time.perf_counter() - start

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(hit, range(40)))
    codes = [c for c, _ in results]
    assert all(c < 500 for c in codes) and codes.count(200) == 40, codes
    ms = np.array([s for _, s in results]) * 1000
    print(f"\nload: 40 requests, 8 clients: p50 {np.percentile(ms, 50):.0f} ms, "
          f"p95 {np.percentile(ms, 95):.0f} ms")  # fmt: skip


def test_page_in_chromium(server, run_dir, tmp_path):
    """Load, upload, see the probabilities (class names as text), toggle Grad-CAM, click an
    activation: the shown sum + bias is the shown activation and the model's own; step."""
    from playwright.sync_api import sync_playwright

    run = load_run(run_dir)
    upload = tmp_path / "ring.png"
    shape_image(1, 3).save(upload)
    shot = ARTIFACTS / "explorer.png"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=need_chromium(), args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(f"error: {e}"))
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
        try:
            page.goto(server)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.set_input_files("#upload", str(upload))
            page.wait_for_selector("#bars li", timeout=30_000)
            names = page.locator("#bars .class-name").all_text_contents()
            assert sorted(names) == sorted(CLASSES)  # the HTML names are shown as text
            assert page.locator("script").count() == 1 and page.locator("img[src=x]").count() == 0
            # the input is drawn once its picture has loaded, which may be after the bars: until
            # then the view is blank with Grad-CAM as without, and the two pictures are equal
            wait_until(page, "state.inputImage?.src === state.prediction.input")
            before = page.evaluate("document.getElementById('view').toDataURL()")
            page.click("#toggle-gradcam")
            assert page.get_attribute("#view", "data-overlay") == "gradcam"
            assert page.evaluate("document.getElementById('view').toDataURL()") != before
            page.wait_for_selector("#feature-grid canvas")
            page.click("#channel-view", position={"x": 150, "y": 110})
            wait_until(page, "document.getElementById('dot-network').textContent !== ''")
            shown = {
                k: float(page.text_content(f"#dot-{k}"))
                for k in ("sum", "bias", "output", "network")
            }
            layer, index = page.evaluate("[state.trace.layer, state.trace.index]")
            pixels, _ = read_upload(upload.read_bytes(), "ring.png", run.input_shape)
            own = float(own_activations(run, pixels)[layer][tuple(index)])
            assert shown["sum"] + shown["bias"] == pytest.approx(
                shown["output"], rel=1e-5, abs=1e-6
            )
            assert shown["output"] == pytest.approx(own, rel=1e-5, abs=1e-5)
            assert shown["network"] == pytest.approx(own, rel=1e-5, abs=1e-5)
            page.keyboard.press("ArrowRight")  # slide the window one position (§2.1)
            wait_until(page, f"state.trace.index[2] === {index[2] + 1}")
        finally:
            page.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot: {shot}")
            browser.close()
    assert not problems, problems


def test_serve_socket_gives_connections_tcp_nodelay():
    """asyncio sets TCP_NODELAY on an accepted connection only when the listening socket says
    it is TCP (proto IPPROTO_TCP): with proto 0, Nagle held every response's body for the
    client's delayed ACK, 44 ms per request. Truth: the kernel's own socket options."""
    import asyncio

    from cnnlab.cli.serve import bind

    listener = bind("127.0.0.1", 0)
    assert listener.proto == socket.IPPROTO_TCP
    seen = {}

    async def main():
        def connected(reader, writer):
            sock = writer.get_extra_info("socket")
            seen["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            writer.close()

        server = await asyncio.start_server(connected, sock=listener)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert seen["nodelay"] != 0


def test_the_page_keeps_no_list_of_its_own():
    assert "image/png" not in (STATIC / "index.html").read_text()


def test_the_file_chooser_accepts_what_the_server_reads(server):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=need_chromium(), args=FLAGS)
        page = browser.new_page()
        try:
            page.goto(server)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            accept = page.get_attribute("#upload", "accept").split(",")
            heading = page.evaluate("document.querySelector('#upload-formats')?.textContent")
        finally:
            browser.close()
    assert sorted(accept) == sorted(IMAGE_FORMATS)
    assert {".tif", ".tiff", ".gif", ".avif", ".jpeg"} <= set(accept)
    assert heading.split("/") == ["PNG", "JPEG", "BMP", "WebP", "TIFF", "GIF", "AVIF"]


# The dot-product panel when the feature layer changes under a clicked unit, and what it
# says its numbers are. A trace belongs to one conv: after a switch from conv 0's map, where
# row 26 exists, to conv 7's 5×5 map, a click on another channel asked the server for unit
# (c, 26, 26) of conv 7 (a 400 in the console), and the panel kept conv 0's numbers and
# window box under conv 7's maps.


def test_switching_layers_under_a_clicked_unit(server, run_dir):
    with opened(server) as (page, problems):
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
        table = page.text_content("#dot-sum-table")
        assert "before any norm (BatchNorm, GroupNorm, InstanceNorm) or activation" in table
        assert "7" in page.text_content("#dot-chain li.shown")
        page.select_option("#feature-layer", "8")  # its ReLU: the same conv, trace kept
        shown = "document.querySelector('#dot-chain li.shown')"
        wait_until(page, f"{shown} !== null && {shown}.textContent.includes('(8)')")
        assert page.evaluate("state.trace.index") == [2, 0, 4]
    assert not problems, problems


MLP = {"name": "tiny-mlp", "input": [1, 28, 28],
       "layers": ["flatten", {"linear": 16}, "relu", {"linear": 2}]}  # fmt: skip


def test_a_model_without_maps_predicts_without_a_refusal(tmp_path):
    """An MLP has no (C, H, W) map: the page asked for the features of layer '' after every
    prediction (a 400 in the console) and said "Could not use this image" over the
    prediction it had just shown and the server's note that there is no Grad-CAM."""
    from cnnlab.train import TrainConfig, train

    for label, name in enumerate(CLASSES):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(6):
            shape_image(label, 100 * label + i).save(tmp_path / "data" / name / f"{i}.png")
    config = TrainConfig(epochs=1, batch_size=4, tta=False, val_fraction=0.2)
    train(cnnlab.load_spec(MLP), str(tmp_path / "data"), tmp_path / "run", config)
    with explorer_page(tmp_path / "run") as (page, problems):
        page.click("#samples figure >> nth=0")
        page.wait_for_selector("#bars li")
        wait_until(page, "document.getElementById('message').textContent !== 'computing…'")
        message = page.text_content("#message")
    assert "Could not use" not in message and "no Grad-CAM" in message, message
    assert not problems, problems


def test_an_address_changed_under_the_open_page_is_shown(server, run_dir):
    """A link pasted into the address bar of the open page (#sample=5&layer=4&unit=2,1,1),
    or the back button to the address before it, fires only `hashchange`: the page kept the
    image, layer and dot product shown, under an address naming others."""
    shown = "[state.sample, state.featureLayer, state.trace && state.trace.index]"
    traced = "state.trace !== null && state.trace.index.join() === '{}' && state.sample === '{}'"
    with opened(server + "#sample=2&layer=0&unit=1,3,4") as (page, problems):
        wait_until(page, traced.format("1,3,4", "2"))
        page.goto(server + "#sample=5&layer=4&unit=2,1,1")  # the same page: a hash change
        wait_until(page, traced.format("2,1,1", "5"))
        seen = [page.evaluate(shown)]
        network = float(page.text_content("#dot-network"))
        selected = page.locator("#layers li.selected").evaluate_all(
            "(l) => l.map((x) => x.dataset.layer)"
        )
        page.go_back()
        wait_until(page, traced.format("1,3,4", "2"))
        seen.append(page.evaluate(shown))
        page.goto(server + "#sample=2&layer=7&unit=0,4,0")  # the image shown, another layer
        wait_until(page, traced.format("0,4,0", "2"))
        seen.append(page.evaluate(shown))
        address = page.evaluate("decodeURIComponent(location.hash)")
    assert seen == [["5", "4", [2, 1, 1]], ["2", "0", [1, 3, 4]], ["2", "7", [0, 4, 0]]], seen
    assert network == pytest.approx(float(conv_output(run_dir, 5, "4")[2, 1, 1]), abs=1e-5)
    assert selected == ["4"] and address == "#sample=2&layer=7&unit=0,4,0", (selected, address)
    assert not problems, problems


def test_the_playground_marks_pixels_between_windows_unread(server):
    """A 1×1 kernel at stride 2 over 5 pixels reads 0, 2 and 4: the page said 'no real pixel
    is dropped' and drew pixels 1 and 3 as read (white)."""
    canvas = "document.getElementById('g-canvas').getContext('2d')"
    red = f"(x, y) => [...{canvas}.getImageData(x, y, 1, 1).data.slice(0, 3)]"
    with opened(server) as (page, problems):
        for field, value in (("#g-size", "5"), ("#g-kernel", "1"), ("#g-stride", "2")):
            page.fill(field, value)
        shown = (
            "state.geometry && [state.geometry.size, state.geometry.kernel, state.geometry.stride]"
        )
        wait_until(page, f"({shown} || []).join() === '5,1,2'")
        text = page.inner_text("#g-results")
        cells = [
            page.evaluate(f"({red})({32 + 64 * i}, 32)") for i in range(5)
        ]  # row 0: 64 px cells
    assert "no real pixel is dropped" not in text and "2 more pixel(s)" in text, text
    assert "(index 1, 3)" in text and "longer than the kernel's span (1)" in text, text
    assert [c == [252, 165, 165] for c in cells] == [False, True, False, True, False], cells
    assert not problems, problems


def test_a_channels_top_image_opens_as_the_input(server, run_dir):
    """A channel's top test images looked clickable (a pointer, as the test images' grid has)
    and a click did nothing: the image that excites the channel most could not be opened."""
    indexes = "[...document.querySelectorAll('#top-images img')].map((i) => i.alt.split(' ')[2])"
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.select_option("#feature-layer", "2")  # conv 0's ReLU: its block's last layer
        wait_until(page, "state.maps.layer === '2'")
        page.click("#feature-grid canvas >> nth=1")
        page.wait_for_selector("#top-images figure")
        at, index = next((k, i) for k, i in enumerate(page.evaluate(indexes)) if i != "0")
        page.click(f"#top-images figure >> nth={at}")
        wait_until(page, f"state.sample === '{index}' && state.maps.image === state.image")
        shown = page.evaluate("[state.featureLayer, state.channel, location.hash]")
        true_class = page.text_content("#true-class")
    run = load_run(run_dir)
    assert true_class == f"true class: {run.classes[int(run.dataset('test').labels[int(index)])]}"
    assert shown == ["2", 1, f"#sample={index}&layer=2"], shown
    assert not problems, problems


def test_a_file_over_the_limit_is_refused_by_name_before_it_is_sent(server, tmp_path):
    """An 11 MiB file was sent whole and refused as 'request body over 10 MiB; upload a
    smaller image': the server's middleware reads no file name."""
    big = tmp_path / "holiday.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(11 * 2**20))
    sent: list[str] = []
    with opened(server) as (page, problems):
        page.on("request", lambda r: "/api/" in r.url and sent.append(r.url))
        page.set_input_files("#upload", str(big))
        wait_until(page, "document.getElementById('message').textContent !== ''")
        message = page.text_content("#message")
    assert message.startswith("Could not use this image: holiday.png (11.0 MiB) is over 10 MiB")
    assert sent == [] and not problems, (sent, problems)


def test_a_click_on_a_layer_without_maps_says_why_nothing_is_shown(server):
    """A click on the Linear head (or the global pooling) in the layer column did nothing,
    without a word, where every other row shows its maps."""
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.click("#layers li[data-layer='10']")  # the Linear: 2 logits
        message = page.text_content("#message")
        layer = page.evaluate("[state.featureLayer, state.maps.layer]")
    assert message.startswith("10 Linear outputs 2 per image, not a (C, H, W) map"), message
    assert layer == ["0", "0"] and not problems, (layer, problems)


def test_a_playground_field_emptied_or_out_of_range_says_its_bounds(server):
    """A field emptied to type another number showed the server's 422 in red ("kernel = '':
    Input should be a valid integer, unable to parse string as an integer", a console error
    each time); a padding of 17 to 64, which the server draws, was past the field's max."""
    sent: list[str] = []
    results = "document.getElementById('g-results').textContent"
    with opened(server) as (page, problems):
        page.on("request", lambda r: "/api/geometry" in r.url and sent.append(r.url))
        page.fill("#g-kernel", "")
        seen = [page.evaluate(results)]
        page.fill("#g-kernel", "40")
        seen.append(page.evaluate(results))
        page.select_option("#g-padding-kind", "number")
        page.fill("#g-kernel", "3")
        page.fill("#g-stride", "1")
        page.fill("#g-padding", "40")
        wait_until(page, "state.geometry !== null && state.geometry.padding[0] === 40")
        output = page.evaluate("state.geometry.output")
    assert seen == [
        "kernel: type a whole number from 1 to 15",
        "kernel: type a whole number from 1 to 15 (not 40)",
    ], seen
    assert output == 7 + 2 * 40 - 3 + 1 and not any("kernel=&" in u for u in sent), sent
    assert not problems, problems
