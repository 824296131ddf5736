"""The note for an input written (H, W, C) fires only where that reading is plausible: the
last number an image's 1, 3 or 4 channels, the first two an image's sides (both at least 8,
at most 4:1). It fired on [12, 5000, 1], 12 signals of 5,000 samples (a 12-lead ECG as
C, H, W), telling its author to write [1, 12, 5000]."""

from __future__ import annotations

import pytest

from cnnlab.cli import main
from cnnlab.design.spec import channels_last_note

LAYERS = "layers: [{conv: {filters: 8, padding: same}}, relu, gap, {linear: 10}]"

# an a×b image with c channels written (a, b, c): the note says it
CHANNELS_LAST = [[28, 28, 1], [32, 32, 3], [64, 48, 4], [8, 8, 1], [100, 400, 3], [224, 224, 3]]
# C, H, W as written: signals, strips, a first number that is a channel count
CHANNELS_FIRST = [[12, 5000, 1], [12, 49, 1], [401, 100, 3], [7, 7, 3], [5, 5, 1], [2, 600, 3]]


@pytest.mark.parametrize("written", CHANNELS_LAST)
def test_an_image_written_channels_last_gets_the_note(written):
    a, b, c = written
    note = channels_last_note(written)
    assert note.startswith(f"input is [C, H, W], so {written} is {a} channels of {b}×{c} images")
    assert note.endswith(f"is [{c}, {a}, {b}]")


@pytest.mark.parametrize("written", CHANNELS_FIRST)
def test_an_input_that_is_no_image_laid_out_h_w_c_gets_none(written):
    a, b, _ = written
    assert max(a, b) > 4 * min(a, b) or min(a, b) < 8  # the rule's own reason, stated apart
    assert channels_last_note(written) == ""


def test_the_cli_says_nothing_of_a_12_lead_signal(capsys):
    code = main(["summary", f"input: [1, 8, 8]\n{LAYERS}", "--input", "12,5000,1"])
    assert code == 0
    assert capsys.readouterr().err == ""
