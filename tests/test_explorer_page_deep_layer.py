"""The explorer's deep-layer panel answers for one layer: with a conv's map shown, its top
test images and its activation maximisation are both its block's last layer's (the ReLU
after its BatchNorm), as each answer names it. Truth: the block (conv, BatchNorm, ReLU) of
the tiny run's spec (explorer_runs.SPEC)."""

from __future__ import annotations

from browser import opened
from explorer_runs import wait_until

NOTE = "document.getElementById('top-note').textContent"
ACTMAX = "document.querySelector('#actmax p')?.textContent || ''"


def test_actmax_is_the_same_layers_as_the_top_images(server):
    """The top images were the ReLU's (layer 2) and the activation maximisation beside them
    the conv's (layer 0): a BatchNorm with γ < 0 makes the one's maximum the other's
    minimum."""
    with opened(server) as (page, problems):
        page.click("#samples figure >> nth=0")
        wait_until(page, "state.maps !== null")
        page.select_option("#feature-layer", "0")  # the first conv; its block ends at 2
        wait_until(page, "state.maps.layer === '0'")  # the click lands on layer 0's grid
        page.click("#feature-grid canvas >> nth=1")
        # the top images are ranked over the test set on the server: slow on a loaded machine
        wait_until(page, f"{NOTE}.startsWith('2 channel 1')", timeout=120)
        page.click("#actmax-button")
        wait_until(page, f"({ACTMAX}).includes('its centre unit')", timeout=120)
        said = page.evaluate(ACTMAX)
    assert said.startswith("2 channel 1: "), said
    assert not problems, problems
