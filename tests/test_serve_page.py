"""The explorer's page in Debian's Chromium (Playwright), driven as a person drives it, where
it went wrong: a window narrower than 800 px, the same file chosen twice, a server restarted
or stopped under an open page, a run imported without --data. Truths: the layout's own
widths, the server's kept images, the browser's console and page errors.
"""

from __future__ import annotations

import pytest

from browser import opened
from explorer_runs import conv_output, explorer_page, serving, shape_image, wait_until
from test_serve_errors import imported  # noqa: F401  (the run imported without --data)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("width", [700, 820, 901])
def test_a_narrow_window_has_no_sideways_scroll(server, width):
    """At 700 to 862 px the 300-px layer column stayed beside the panels and the 8 test
    images: the page was 863 px wide (the layout changed at 800 px only)."""
    with opened(server, width=width) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.click("#channel-view", position={"x": 100, "y": 100})
        wait_until(page, "state.trace !== null")
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    assert not problems, problems


def test_the_same_file_chosen_again_is_predicted_again(server, tmp_path):
    """A file chosen again after a test image fired no `change`: the test image stayed."""
    upload = tmp_path / "ring.png"
    shape_image(1, 3).save(upload)
    uploaded = "state.prediction !== null && state.prediction.true_class === undefined"
    with opened(server) as (page, problems):
        for _ in range(2):
            with page.expect_file_chooser() as chooser:
                page.click("#upload")
            chooser.value.set_files(str(upload))
            wait_until(page, uploaded)
            page.click("#samples figure >> nth=0")  # a test image has a true class
            wait_until(page, f"!({uploaded})")
    assert not problems, problems


def test_a_restarted_server_gets_the_image_again(server, client):
    """After a restart (every kept image forgotten) each control said "image '…' is no longer
    kept; send it again", and a layer switch threw in the page."""
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=1")
        wait_until(page, "state.maps !== null")
        client.app.state.explorer.probes.clear()  # what a restart forgets
        page.click("#channel-view", position={"x": 140, "y": 140})
        wait_until(page, "state.trace !== null")
        client.app.state.explorer.probes.clear()
        page.select_option("#feature-layer", "4")  # conv 4: 6×7×7
        wait_until(page, "state.maps.h === 7")
        message = page.text_content("#message")
    assert message == "" and [p for p in problems if "404" not in p] == []


def test_a_stopped_server_is_named_with_the_fix(server):
    """The page said "Failed to fetch" (the browser's words) on any control."""
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.route("**/api/**", lambda route: route.abort("connectionrefused"))
        page.select_option("#feature-layer", "3")
        wait_until(page, "document.getElementById('message').textContent !== ''")
        message = page.text_content("#message")
    assert "cnnlab serve" in message and "Failed to fetch" not in message
    assert not [p for p in problems if p.startswith("error:")], problems  # no uncaught throw


def test_a_run_without_data_offers_no_dead_control(imported):  # noqa: F811
    """An empty test-image grid kept a 'More test images' button that did nothing, the header
    said 'data None', a lint of the model read 'rf-small (undefined)', and each channel asked
    for top images the server cannot have (a 404 in the console)."""
    with explorer_page(imported) as (page, problems):
        assert not page.is_visible("#more-samples")
        assert "imported without --data" in page.text_content("#samples")
        assert "data None" not in page.text_content("#run-info")
        assert "undefined" not in page.text_content("#model-lints")
        assert "rf-small (model)" in page.text_content("#model-lints")
        page.click("#draw-predict")
        wait_until(page, "state.maps !== null")
        assert "imported without --data" in page.text_content("#top-note")
    assert not problems, problems


def test_the_image_shown_chosen_again_asks_nothing(server):
    """Test image 0 clicked again while shown: the page asked again for its prediction and
    maps. Image 1 is clicked next: a request of the second click would be sent before its."""
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        sent = []
        page.on("request", lambda r: "/api/" in r.url and sent.append(r.url.split("?")[0]))
        page.click("#samples figure >> nth=0")
        page.click("#samples figure >> nth=1")
        wait_until(page, "state.sample === '1' && state.maps.image === state.image")
        chosen = page.locator("#samples figure.chosen").evaluate_all(
            "(f) => f.map((x) => x.dataset.index)"
        )
    assert [url.rsplit("/", 1)[1] for url in sent] == ["predict", "features"], sent
    assert chosen == ["1"] and not problems, (chosen, problems)


def test_the_highlighted_test_image_is_the_one_shown(server, tmp_path):
    """Opened at #sample=3 (a reload, a shared link), test image 3 was shown but not
    highlighted, and a click on it did nothing (chosen already); after an upload the test
    image left stayed highlighted."""
    upload = tmp_path / "ring.png"
    shape_image(1, 3).save(upload)
    highlighted = (
        "[...document.querySelectorAll('#samples figure.chosen')].map((f) => f.dataset.index)"
    )
    with opened(server + "#sample=3") as (page, problems):
        wait_until(page, "state.sample === '3' && state.maps !== null")
        seen = [page.evaluate(highlighted)]
        page.click("#samples figure[data-index='3']")
        seen.append(page.evaluate(highlighted))
        shown = page.evaluate("[state.sample, state.prediction.true_class !== undefined]")
        page.click("#samples figure[data-index='5']")
        wait_until(page, "state.sample === '5' && state.maps.image === state.image")
        seen.append(page.evaluate(highlighted))
        page.set_input_files("#upload", str(upload))
        wait_until(
            page, "state.prediction.true_class === undefined && state.maps.image === state.image"
        )
        seen.append(page.evaluate(highlighted))
    assert seen == [["3"], ["3"], ["5"], []] and shown == ["3", True], (seen, shown)
    assert not problems, problems


def test_the_keyboard_alone_reaches_a_dot_product(server):
    """Test images and channel maps answered clicks only (no Tab stop), and the step buttons
    did nothing before a unit was clicked: a keyboard reached no prediction of a test image
    and no dot product."""
    with opened(server) as (page, problems):
        page.focus("#samples figure >> nth=2")  # where Tab stops (tabindex 0)
        assert page.evaluate("document.activeElement.tabIndex") == 0
        page.keyboard.press("Enter")
        wait_until(page, "state.maps !== null && state.prediction.true_class !== undefined")
        page.focus("#feature-grid canvas >> nth=1")
        page.keyboard.press(" ")
        wait_until(page, "state.channel === 1")
        page.focus("#step-right")
        page.keyboard.press("Enter")  # no unit yet: the top-left one
        wait_until(page, "state.trace !== null")
        page.keyboard.press("Enter")
        wait_until(page, "state.trace.index.join() === '1,0,1'")
        order = page.evaluate(
            "[...document.querySelectorAll('#samples figure, #feature-grid canvas')]"
            ".every((n) => n.tabIndex === 0 && n.getAttribute('role') === 'button')"
        )
    assert order and not problems, problems


# Answers that come back out of order, and a clicked unit when the image changes. Truths: the
# network's own conv output (a forward hook), the server's own answers for the last request.


def test_another_image_keeps_the_clicked_unit_with_its_own_numbers(server, run_dir):
    """The dot-product panel kept the last image's numbers under a new image, and the arrow
    keys then did nothing (the page had dropped the unit but not its numbers)."""
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.click("#channel-view", position={"x": 140, "y": 140})
        wait_until(page, "state.trace !== null")
        unit, image = page.evaluate("[state.trace.index, state.image]")
        page.click("#samples figure >> nth=1")
        wait_until(page, f"state.image !== '{image}' && state.trace !== null")
        assert page.evaluate("state.trace.index") == unit
        own = float(conv_output(run_dir, 1, "0")[tuple(unit)])
        assert float(page.text_content("#dot-network")) == pytest.approx(own, abs=1e-5)
        for _ in range(3):  # three quick presses, before any answer: three steps
            page.keyboard.press("ArrowDown")
        wait_until(page, f"state.trace.index[1] === {unit[1] + 3}")
    assert not problems, problems


# each answer of a kind comes later than the next one's: the first after 900 ms, then 150 ms
# less. window.unanswered counts the answers whose body the page has not read yet: at 0 every
# answer is in and handled (what the page does with a body runs before the next task), where
# a fixed wait let a loaded machine look before the last one came
CROSSED = """() => {
  const real = window.fetch, sent = {};
  window.unanswered = 0;
  window.fetch = async (url, options) => {
    window.unanswered++;
    const response = await real(url, options);
    const kind = String(url).split("?")[0];
    const k = (sent[kind] = (sent[kind] ?? -1) + 1);
    await new Promise((done) => setTimeout(done, Math.max(0, 900 - 150 * k)));
    const json = response.json.bind(response);
    response.json = () => json().finally(() => window.unanswered--);
    return response;
  };
}"""
ANSWERED = "window.unanswered === 0"


def test_the_last_choice_wins_when_answers_cross(server):
    """Five test images clicked in a row, six Grad-CAM layers chosen in a row, answers coming
    back in the reverse order: the page showed the first choice's, not the last one's."""
    with opened(server) as (page, problems):
        page.evaluate(CROSSED)
        page.evaluate(
            "const f = document.querySelectorAll('#samples figure');"
            "for (const k of [3, 4, 5, 6, 7]) f[k].click();"
        )
        wait_until(page, f"{ANSWERED} && state.maps !== null")  # every answer in
        form = "(() => { const f = new FormData(); f.append('sample', 7); return f; })()"
        truth = page.evaluate(
            f"fetch('/api/predict', {{method: 'POST', body: {form}}}).then((r) => r.json())"
        )
        assert page.evaluate("[state.image, state.maps.n > 0]") == [truth["image"], True]
        options = "[...document.querySelectorAll('#cam-layer option')]"
        layers = page.evaluate(f"{options}.map((o) => o.value)")
        page.evaluate(
            "(layers) => { const s = document.getElementById('cam-layer');"
            "for (const l of layers) { s.value = l; s.dispatchEvent(new Event('change')); } }",
            layers[:6],
        )
        wait_until(page, ANSWERED)
        shown = page.evaluate("state.heat.gradcam")
        url = f"/api/heatmap?image={truth['image']}&layer={layers[5]}"
        assert shown == page.evaluate(f"fetch('{url}').then((r) => r.json()).then((j) => j.map)")
    assert not problems, problems


def test_the_back_button_comes_back_to_the_image_layer_and_unit(server, run_dir):
    """Away and back (or a reload), the page came back empty: no image, the first layer, no
    dot product. An address naming what is not there (a channel past the layer's, a sample
    past the test set) is ignored, not an error."""
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=4")
        wait_until(page, "state.maps !== null")
        page.select_option("#feature-layer", "4")  # conv 4: 6×7×7
        wait_until(page, "state.maps.h === 7")
        page.click("#feature-grid canvas >> nth=3")
        page.click("#channel-view", position={"x": 10, "y": 270})  # row 6, column 0
        wait_until(page, "state.trace !== null && state.trace.index.join() === '3,6,0'")
        page.goto(server + "elsewhere")
        page.go_back()
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        wait_until(page, "state.trace !== null")
        assert page.evaluate("[state.trace.layer, state.trace.index]") == ["4", [3, 6, 0]]
        assert page.evaluate("state.prediction.true_class") is not None
        own = float(conv_output(run_dir, 4, "4")[3, 6, 0])
        assert float(page.text_content("#dot-network")) == pytest.approx(own, abs=1e-5)
        page.goto(server + "elsewhere")
        page.goto(server + "#sample=9999&layer=4&unit=40,1,1")
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        assert page.evaluate("[state.image, state.featureLayer]") == [None, "4"]
        page.goto(server + "elsewhere")
        page.goto(server + "#sample=2&layer=4&unit=40,1,1")
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        wait_until(page, "state.trace !== null")
        assert page.evaluate("state.trace.index") == [0, 1, 1]
    assert [p for p in problems if "404" not in p] == [], problems  # "elsewhere" is a 404


def test_a_click_on_a_map_with_no_dot_product_says_where_there_is_one(server):
    """'3 is not a convolution' did not say which layers are, and for a model's own conv
    (F.conv2d on its parameter) it was not true: only an nn.Conv2d is traced."""
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.select_option("#feature-layer", "3")  # the max pooling
        wait_until(page, "state.maps.h === 14")
        page.click("#channel-view", position={"x": 100, "y": 100})
        message = page.text_content("#message")
    assert "not an nn.Conv2d" in message and "marked blue" in message
    assert not problems, problems


def imported_run(tmp_path, code: str, shape: list[int]):
    """A run of `code`'s make_net (seeded 0) imported without data: two classes."""
    import textwrap

    import torch
    from safetensors.torch import save_file

    from cnnlab.train.importing import import_run
    from cnnlab.train.source import parse_model_ref

    (tmp_path / "net.py").write_text(textwrap.dedent(code))
    source = parse_model_ref(f"{tmp_path / 'net.py'}:make_net", [])
    torch.manual_seed(0)
    save_file(source.build().state_dict(), tmp_path / "w.safetensors")
    import_run(source, tmp_path / "w.safetensors", tmp_path / "run", None, classes=["a", "b"],
               mean=[0.5], std=[0.25], input_shape=shape)  # fmt: skip
    return tmp_path / "run"


WIDE = """
    from torch import nn

    def make_net():
        return nn.Sequential(nn.Conv2d(1, 2, 3, stride=(1, 2), padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
"""


def test_a_wide_input_and_map_keep_their_shape(tmp_path):
    """A 20×36 input and its 20×18 maps were drawn on square canvases, stretched (the unit's
    box with them), and a drawing was made on a square that the run's input then cropped."""
    with explorer_page(imported_run(tmp_path, WIDE, [1, 20, 36])) as (page, problems):
        page.click("#draw-predict")
        wait_until(page, "state.maps !== null")
        size = "(id) => [document.getElementById(id).width, document.getElementById(id).height]"
        shapes = {i: page.evaluate(size, i) for i in ("view", "draw", "channel-view")}
        cell = page.evaluate(
            "(() => { const r = document.querySelector('#feature-grid canvas')"
            ".getBoundingClientRect(); return [r.width, r.height]; })()"
        )
        page.click("#channel-view", position={"x": 250, "y": 278})  # the last row and column
        wait_until(page, "state.trace !== null")
        index = page.evaluate("state.trace.index")
    assert shapes == {"view": [280, 156], "draw": [224, 124], "channel-view": [252, 280]}
    assert cell == [pytest.approx(48 * 18 / 20, abs=0.6), 48]
    assert index == [0, 19, 17] and not problems, problems


GROUPED = """
    from torch import nn

    def make_net():
        return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1, groups=3),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2))
"""


def test_a_grouped_conv_lists_the_input_channels_of_the_filter_shown(tmp_path):
    """The input-channel list was built once per channel count: filter 5 of a 3-group conv
    reads input channels 4 and 5, and the list still said 0 and 1."""
    with explorer_page(imported_run(tmp_path, GROUPED, [1, 12, 12])) as (page, problems):
        page.click("#draw-predict")
        wait_until(page, "state.maps !== null")
        page.select_option("#feature-layer", "1")
        page.click("#channel-view", position={"x": 100, "y": 100})
        wait_until(page, "state.trace !== null && state.trace.layer === '1'")
        first = page.locator("#dot-channel option").all_text_contents()
        page.click("#feature-grid canvas >> nth=5")
        wait_until(page, "state.trace.index[0] === 5")
        fifth = page.locator("#dot-channel option").all_text_contents()
        page.select_option("#feature-layer", "0")  # another conv: the list goes, then comes back
        page.click("#channel-view", position={"x": 100, "y": 100})
        wait_until(page, "state.trace !== null && state.trace.layer === '0'")
        page.select_option("#feature-layer", "1")
        page.click("#channel-view", position={"x": 100, "y": 100})
        wait_until(page, "state.trace !== null && state.trace.layer === '1'")
        again = page.locator("#dot-channel option").all_text_contents()
    assert (first, fifth, again) == (["0", "1"], ["4", "5"], ["4", "5"])
    assert not problems, problems


def test_a_click_made_while_a_new_layers_maps_load_is_traced_on_them(tmp_path):
    """A unit clicked just after another conv was chosen, its maps still on their way, was
    asked for against the old maps; their arrival then cleared the old conv's dot product and
    cancelled the click's with it: nothing showed. Both answers are slowed here, the trace
    more, so the click always lands before the maps and the maps before its trace."""
    import asyncio

    from cnnlab.explorer import create_app

    app = create_app(imported_run(tmp_path, GROUPED, [1, 12, 12]))

    @app.middleware("http")
    async def slowed(request, call_next):
        await asyncio.sleep({"/api/features": 0.4, "/api/trace": 0.8}.get(request.url.path, 0))
        return await call_next(request)

    with serving(app) as url, opened(url) as (page, problems):
        page.click("#draw-predict")
        wait_until(page, "state.maps !== null")
        page.click("#channel-view", position={"x": 100, "y": 100})
        wait_until(page, "state.trace !== null && state.trace.layer === '0'")
        page.select_option("#feature-layer", "1")
        page.click("#channel-view", position={"x": 100, "y": 100})
        wait_until(page, "state.trace !== null && state.trace.layer === '1'", timeout=10)
        shown = page.evaluate("[state.maps.layer, state.trace.index]")
    assert shown[0] == "1" and shown[1][1:] == [4, 4], shown
    assert not problems, problems


def test_a_click_keeps_the_uploads_note(server, tmp_path):
    """The note that an upload was resized and converted vanished at the first click on a
    unit (the click cleared the message line for its own earlier refusals)."""
    from PIL import Image

    upload = tmp_path / "wide.jpg"
    Image.new("RGB", (60, 40), (200, 30, 30)).save(upload)
    with opened(server) as (page, problems):
        page.set_input_files("#upload", str(upload))
        wait_until(page, "state.maps !== null")
        note = page.text_content("#message")
        page.click("#channel-view", position={"x": 100, "y": 100})
        wait_until(page, "state.trace !== null")
        after = page.text_content("#message")
    assert "resized" in note and "RGB->L" in note and after == note, (note, after)
    assert not problems, problems


def test_the_deep_layer_panel_follows_the_layer_and_channel(server):
    """After another layer was chosen the panel kept the last layer's top images (the page
    asked again only on a click of a channel), and an activation maximisation finishing
    after a channel switch was shown under the new channel."""
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        wait_until(
            page, "document.getElementById('top-note').textContent.startsWith('2 channel 0')"
        )
        page.select_option("#feature-layer", "7")  # conv 7; its block ends at its ReLU, 8
        wait_until(
            page, "document.getElementById('top-note').textContent.startsWith('8 channel 0')"
        )
        page.evaluate(CROSSED)  # the actmax answer comes late
        page.click("#actmax-button")
        page.click("#feature-grid canvas >> nth=3")
        wait_until(
            page, "document.getElementById('top-note').textContent.startsWith('8 channel 3')"
        )
        wait_until(page, ANSWERED)  # the first channel's image is in by now
        shown = page.locator("#actmax img").count()
    assert shown == 0 and not problems, problems


def test_a_drawing_gets_no_note_meant_for_a_file(server):
    """'drawing.png is 224×224 (H×W); resized to 28×28 …; converted (drawing.png RGBA->L);
    transparent pixels are black': the page made that PNG, opaque, at its canvas's size."""
    with opened(server) as (page, problems):
        box = page.locator("#draw").bounding_box()
        page.mouse.move(box["x"] + 60, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + 150, box["y"] + 170, steps=10)
        page.mouse.up()
        page.click("#draw-predict")
        wait_until(page, "state.maps !== null && state.prediction !== null")
        message = page.text_content("#message")
    assert message == "" and not problems, (message, problems)


def test_a_server_restarted_on_another_run_is_said(server, client):
    """A restart on another run (same port) answered every control about a model the page did
    not show ('\\'4\\' is not a convolution of this model')."""
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        other = client.get("/api/model").json() | {"name": "other", "input_shape": [3, 64, 64]}
        page.route("**/api/model", lambda route: route.fulfill(json=other))
        client.app.state.explorer.probes.clear()  # a restart forgets the image
        page.click("#channel-view", position={"x": 100, "y": 100})
        wait_until(page, "document.getElementById('message').textContent !== ''")
        message = page.text_content("#message")
    assert "another run (other, input 3×64×64): reload the page" in message, message
    assert not [p for p in problems if p.startswith("error:")], problems
