"""`cnnlab demo`'s last line offers `eval --tta` only to a run with test-time views: a
digits demo was told to try --tta, which then said the run has no views."""

from __future__ import annotations

from pathlib import Path

import cnnlab.cli.demo as demo
from cnnlab.train.evaluate import tta_label


def test_the_next_commands_offer_tta_only_to_a_run_that_has_views():
    sample = Path("runs/demo/samples/test0-5.png")
    digits = tta_label({"flip": False, "tta_shift": 0})
    assert "--tta" not in demo.try_line(Path("runs/demo"), sample, digits)
    fashion = tta_label({"flip": True, "tta_shift": 0})
    assert "cnnlab eval runs/demo --tta" in demo.try_line(Path("runs/demo"), sample, fashion)
