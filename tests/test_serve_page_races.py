"""The explorer's page when the person acts while an answer is on its way: a unit clicked, a
step taken or a channel chosen while the maps of a new image or layer load, another image
chosen while a unit's dot product loads. The server holds the answers in question (Held) so
the order is the one named, however loaded the machine is. Truths: the network's own conv
output (a forward hook), the unit asked for last, the browser's console.
"""

from __future__ import annotations

import pytest

from browser import opened
from explorer_runs import Held, conv_output, explorer_page, shapes_run, wait_until

pytestmark = pytest.mark.usefixtures("one_thread")

# every answer asked for is in: the dot product shown is the unit asked for last (the maps
# asked for last are shown before: each action on them waits for them)
SETTLED = (
    "state.maps !== window.before && state.trace !== null"
    " && state.trace.index.join() === state.unit.join()"
)


def first_unit(page) -> None:
    """Test image 0 predicted and unit (0, 14, 14) of conv 0 traced on it."""
    page.click("#samples figure >> nth=0")
    wait_until(page, "state.maps !== null")
    page.click("#channel-view", position={"x": 150, "y": 150})
    wait_until(page, "state.trace !== null && state.trace.index.join() === '0,14,14'")
    page.evaluate("window.before = state.maps")


def next_image_held(page, features) -> None:
    """first_unit, then test image 1 predicted with its maps held by `features`."""
    first_unit(page)
    features.close()
    page.click("#samples figure >> nth=1")
    features.wait_held(1)


def test_a_dot_product_on_its_way_when_another_image_comes_is_not_shown_under_it(run_dir):
    """A unit clicked, then another test image chosen before its dot product came: the dot
    product came after the image and showed the last image's numbers under the new one."""
    traces = Held("/api/trace")
    with explorer_page(run_dir, traces) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        traces.close()
        page.click("#channel-view", position={"x": 150, "y": 150})  # row 14, column 14
        traces.wait_held(1)
        page.evaluate("window.before = state.maps")
        page.click("#samples figure >> nth=1")
        wait_until(page, "state.maps !== window.before")  # image 1's maps shown
        traces.open()
        wait_until(page, SETTLED)
        unit = page.evaluate("state.trace.index")
        shown = float(page.text_content("#dot-network"))
    assert unit == [0, 14, 14]
    assert shown == pytest.approx(float(conv_output(run_dir, 1, "0")[0, 14, 14]), abs=1e-5)
    assert not problems, problems


def test_a_unit_clicked_while_the_new_images_maps_load_stays_clicked(run_dir):
    """A unit clicked after another image was predicted, its maps on their way: their arrival
    traced the unit clicked on the last image instead (the click's dot product was cancelled)."""
    features = Held("/api/features")
    with explorer_page(run_dir, features) as (page, problems):
        next_image_held(page, features)
        page.click("#channel-view", position={"x": 60, "y": 260})  # row 25, column 6
        features.open()
        wait_until(page, SETTLED)
        unit = page.evaluate("[state.trace.index, state.trace.image === state.image]")
        shown = float(page.text_content("#dot-network"))
    assert unit == [[0, 25, 6], True]
    assert shown == pytest.approx(float(conv_output(run_dir, 1, "0")[0, 25, 6]), abs=1e-5)
    assert not problems, problems


def test_a_step_taken_while_another_convs_maps_load_is_taken_on_them(run_dir):
    """A step (row ↓) taken after conv 7 was chosen, its 5×5 maps on their way, stepped conv
    0's unit (0, 27, 27) on conv 7: a refusal (no row 27), or nothing once the maps came. It
    is taken as just after they came: conv 0's unit is gone, the step starts at the top left."""
    features = Held("/api/features")
    with explorer_page(run_dir, features) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.click("#channel-view", position={"x": 275, "y": 275})  # row 27, column 27
        wait_until(page, "state.trace !== null")
        page.evaluate("window.before = state.maps")
        features.close()
        page.select_option("#feature-layer", "7")
        features.wait_held(1)
        page.click("#step-down")
        features.open()
        wait_until(page, SETTLED, timeout=10)
        shown = page.evaluate("[state.maps.h, state.trace.layer, state.trace.index]")
        message = page.text_content("#message")
    assert shown == [5, "7", [0, 0, 0]] and message == "", (shown, message)
    assert not problems, problems


def test_a_channel_chosen_while_a_units_dot_product_loads_keeps_the_unit(run_dir):
    """Unit (0, 25, 6) clicked, then channel 2 chosen before its dot product came: channel 2
    was traced at the unit shown before, (14, 14), and the click was cancelled."""
    traces = Held("/api/trace")
    with explorer_page(run_dir, traces) as (page, problems):
        first_unit(page)
        page.evaluate("window.before = null")  # the maps stay
        traces.close()
        page.click("#channel-view", position={"x": 60, "y": 260})  # row 25, column 6
        traces.wait_held(1)
        page.click("#feature-grid canvas >> nth=2")
        traces.wait_held(2)
        traces.open()
        wait_until(page, SETTLED)
        unit = page.evaluate("state.trace.index")
    assert unit == [2, 25, 6] and not problems, (unit, problems)


def test_the_saliency_overlay_stays_shown_for_another_image(run_dir):
    """With the saliency overlay chosen, another test image showed no overlay: its map was
    asked for only when the overlay was chosen."""
    with explorer_page(run_dir) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.check("#toggle-saliency")
        wait_until(page, "state.heat.saliency !== undefined")
        first = page.evaluate("[state.image, state.heat.saliency]")
        page.click("#samples figure >> nth=1")
        wait_until(page, f"state.image !== '{first[0]}' && state.heat.saliency !== undefined")
        second = page.evaluate("state.heat.saliency")
    assert second != first[1] and not problems, problems


# Answers left behind: an answer for a choice since replaced must change nothing. UNREAD counts
# the answers whose body the page has not read yet (a refused one as read): at 0 the page has
# done all it does with them (that runs before the next task)
UNREAD = """() => {
  const real = window.fetch;
  window.unread = 0;
  window.fetch = async (url, options) => {
    window.unread++;
    let response;
    try { response = await real(url, options); } catch (e) { window.unread--; throw e; }
    const json = response.json.bind(response);
    response.json = () => json().finally(() => window.unread--);
    return response;
  };
}"""


def held_in_browser(page, match) -> list:
    """The requests whose URL `match` accepts, held by the browser: each route in the list
    returned waits (for .abort(), a server gone for a moment) as the page goes on."""
    routes = []
    page.route(match, lambda route: routes.append(route))
    return routes


def wait_routed(page, routes: list) -> None:
    for _ in range(600):  # the browser's events (its requests) are taken in while waiting
        if routes:
            return
        page.wait_for_timeout(50)
    raise AssertionError("the page sent no request to hold")


def refused_late(page, routes: list) -> str:
    """The message after the held request is refused and all answers are read."""
    routes[0].abort("connectionrefused")
    wait_until(page, "window.unread === 0")
    return page.text_content("#message")


def test_an_arrow_key_pressed_while_another_convs_maps_load_asks_nothing_of_it(run_dir):
    """ArrowDown pressed after conv 7 was chosen, its 5×5 maps on their way, asked conv 7 for
    conv 0's unit stepped, (0, 27, 27): a refusal, said and in the console. Taken as just after
    the maps came, where conv 0's unit is gone, the key does nothing."""
    features = Held("/api/features")
    with explorer_page(run_dir, features) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.click("#channel-view", position={"x": 275, "y": 275})  # row 27, column 27
        wait_until(page, "state.trace !== null")
        page.evaluate(UNREAD)
        features.close()
        page.select_option("#feature-layer", "7")
        features.wait_held(1)
        page.evaluate("document.activeElement.blur()")  # arrows in the list choose a layer
        page.keyboard.press("ArrowDown")
        features.open()
        wait_until(page, "state.maps.h === 5 && window.unread === 0")
        trace = page.evaluate("state.trace")
        message = page.text_content("#message")
    assert (trace, message) == (None, "") and not problems, (message, problems)


def test_a_refusal_for_a_layer_left_is_not_said_over_the_one_chosen(server):
    """Layer 3 chosen, then layer 4, whose maps came first; layer 3's refusal (a server gone
    for a moment) came after them, and the page said it under layer 4's maps."""
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.evaluate(UNREAD)
        routes = held_in_browser(page, lambda url: "/api/features" in url and "layer=3" in url)
        page.select_option("#feature-layer", "3")
        wait_routed(page, routes)
        page.select_option("#feature-layer", "4")  # conv 4: 6×7×7
        wait_until(page, "state.maps.h === 7")
        message = refused_late(page, routes)
    assert message == "", message
    assert not [p for p in problems if p.startswith("error:")], problems


def test_a_refusal_for_a_unit_left_is_not_said_over_the_one_chosen(server):
    """The same for a unit clicked, then another whose dot product came first."""
    with opened(server) as (page, problems):
        first_unit(page)
        page.evaluate(UNREAD)
        routes = held_in_browser(page, lambda url: "/api/trace" in url and "row=25" in url)
        page.click("#channel-view", position={"x": 60, "y": 260})  # row 25, column 6
        wait_routed(page, routes)
        page.click("#channel-view", position={"x": 150, "y": 60})  # row 5, column 14
        wait_until(page, "state.trace.index.join() === '0,5,14'")
        message = refused_late(page, routes)
    assert message == "", message


def test_a_refusal_for_a_grad_cam_layer_or_image_left_is_not_said(server):
    """The same for a Grad-CAM layer chosen, then another, and for a test image chosen, then
    another whose prediction came first ('Could not use this image' under it)."""
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.evaluate(UNREAD)
        layers = page.locator("#cam-layer option").evaluate_all("(o) => o.map((x) => x.value)")
        routes = held_in_browser(page, lambda url: f"gradcam&layer={layers[0]}" in url)
        page.select_option("#cam-layer", layers[0])
        wait_routed(page, routes)
        page.select_option("#cam-layer", layers[1])
        wait_until(page, "window.unread === 1")  # the second layer's map in, the first held
        cam = refused_late(page, routes)
        routes = held_in_browser(page, "**/api/predict")
        page.click("#samples figure >> nth=1")
        wait_routed(page, routes)
        page.unroute("**/api/predict")
        page.click("#samples figure >> nth=2")
        wait_until(page, "state.prediction.true_class !== undefined && state.sample === '2'")
        wait_until(page, "state.maps.image === state.image && window.unread === 1")
        image = refused_late(page, routes)
    assert (cam, image) == ("", ""), (cam, image)


# the input size set to `value` as one keystroke sets it (fill empties the field first: a
# refused size of "" in between)
TYPED = """(value) => { const size = document.getElementById("g-size");
  size.value = value; size.dispatchEvent(new Event("input", { bubbles: true })); }"""


def test_the_geometry_shown_is_the_last_one_typed(run_dir):
    """The input size typed as 5, then 28: the answer for 5, come last, was shown."""
    slow = Held("size=5&")
    with explorer_page(run_dir, slow) as (page, problems):
        page.evaluate(UNREAD)
        slow.close()
        page.evaluate(TYPED, "5")
        slow.wait_held(1)
        page.evaluate(TYPED, "28")
        wait_until(page, "state.geometry.size === 28")
        slow.open()
        wait_until(page, "window.unread === 0")
        shown = page.evaluate(
            "[state.geometry.size, document.getElementById('g-window').textContent]"
        )
    assert shown[0] == 28 and "of 9×9" in shown[1] and not problems, (shown, problems)


def test_a_first_click_on_a_conv_left_for_another_shows_no_dot_product(run_dir):
    """A first unit clicked on conv 0 (no dot product shown yet), then conv 7 chosen, whose
    maps came before the dot product: it was shown under conv 7's 5×5 maps (conv 0's box at
    row 14), and the next step asked conv 7 for conv 0's unit, clamped."""
    traces = Held("/api/trace")
    with explorer_page(run_dir, traces) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.evaluate(UNREAD)
        traces.close()
        page.click("#channel-view", position={"x": 150, "y": 150})  # conv 0's (0, 14, 14)
        traces.wait_held(1)
        page.select_option("#feature-layer", "7")
        wait_until(page, "state.maps.h === 5")
        traces.open()
        wait_until(page, "window.unread === 0")
        left = page.evaluate("[state.trace, state.unit]")
        page.click("#step-down")  # no unit of conv 7 yet: its top-left one
        wait_until(page, "state.trace !== null")
        stepped = page.evaluate("[state.trace.layer, state.trace.index]")
        message = page.text_content("#message")
    assert left == [None, None], left
    assert stepped == ["7", [0, 0, 0]] and message == "", (stepped, message)
    assert not problems, problems


def test_a_unit_carried_to_a_new_image_is_stepped_from_while_its_maps_load(run_dir):
    """Unit (0, 14, 14) traced, another test image chosen, then row ↓ taken twice (a button,
    an arrow key) while its maps load: the button's step started at the top left (the unit was
    carried only after the steps ran) and the key was dropped, ending at (0, 0, 0)."""
    features = Held("/api/features")
    with explorer_page(run_dir, features) as (page, problems):
        next_image_held(page, features)
        page.click("#step-down")
        page.keyboard.press("ArrowDown")
        features.open()
        wait_until(page, SETTLED)
        unit = page.evaluate("[state.trace.index, state.trace.image === state.image]")
        shown = float(page.text_content("#dot-network"))
    assert unit == [[0, 16, 14], True], unit
    assert shown == pytest.approx(float(conv_output(run_dir, 1, "0")[0, 16, 14]), abs=1e-5)
    assert not problems, problems


def test_after_a_refused_layer_a_click_is_taken_on_the_maps_shown(server):
    """Conv 7 chosen and its maps refused (a server gone for a moment): conv 0's maps stayed
    shown, yet every click on them waited for conv 7's, silently, until another layer came."""
    with opened(server) as (page, problems):
        first_unit(page)
        page.evaluate(UNREAD)
        routes = held_in_browser(page, lambda url: "/api/features" in url and "layer=7" in url)
        page.select_option("#feature-layer", "7")
        wait_routed(page, routes)
        refused = refused_late(page, routes)
        page.click("#channel-view", position={"x": 60, "y": 260})  # conv 0's (0, 25, 6)
        wait_until(page, "state.trace.index.join() === '0,25,6'", timeout=10)
        chosen = page.evaluate(
            "[state.featureLayer, document.getElementById('feature-layer').value]"
        )
    assert "does not answer" in refused and chosen == ["0", "0"], (refused, chosen)
    assert not [p for p in problems if p.startswith("error:")], problems


def test_after_another_images_maps_are_refused_a_step_waits_for_none(server):
    """Unit (0, 14, 14) traced, test image 1 chosen and its maps refused: the last image's
    maps stayed, a step taken then waited for image 1's and ran when conv 0's BatchNorm was
    chosen, at the top left; the unit carried was never traced on image 1."""
    with opened(server) as (page, problems):
        first_unit(page)
        page.evaluate(UNREAD)
        routes = held_in_browser(page, "**/api/features*")
        page.click("#samples figure >> nth=1")
        wait_routed(page, routes)
        refused = refused_late(page, routes)
        page.click("#step-down")
        gone = page.evaluate(
            "[state.maps, document.querySelectorAll('#feature-grid canvas').length]"
        )
        page.unroute("**/api/features*")
        page.select_option("#feature-layer", "1")  # conv 0's BatchNorm
        wait_until(page, "state.maps !== null && state.trace !== null")
        unit = page.evaluate("[state.trace.index, state.trace.image === state.image]")
    assert "does not answer" in refused and gone == [None, 0], (refused, gone)
    assert unit == [[0, 14, 14], True], unit
    assert not [p for p in problems if p.startswith("error:")], problems


@pytest.fixture(scope="module")
def pages_run(tmp_path_factory):
    """A run with 28 test images: more than a page (24), which does not divide them."""
    return shapes_run(tmp_path_factory.mktemp("pages"), 70, batch_size=16)


def test_more_test_images_clicked_twice_skips_no_page(pages_run):
    """'More test images' double-clicked: both requests asked for page 24, and both answers
    advanced the offset, so the next click showed page 72 mod 28 = 16, not 48 mod 28 = 20."""
    samples = Held("/api/samples")
    first = "document.querySelector('#samples figure').dataset.index"
    with explorer_page(pages_run, samples) as (page, problems):
        page.evaluate(UNREAD)
        samples.close()
        page.dblclick("#more-samples")
        samples.wait_held(1)  # the same URL twice: Chromium sends the second once the first is in
        samples.open()
        wait_until(page, "window.unread === 0")
        shown = [page.evaluate(first)]
        page.click("#more-samples")
        wait_until(page, "window.unread === 0")
        shown.append(page.evaluate(first))
    assert shown == ["24", "20"] and not problems, (shown, problems)
