"""The report names the views its "test accuracy with TTA" averaged, as train and eval do: a
run with flips and 1-px shifts is not "(flip)", and a run with no views (digits trains
without flips) has no TTA figure, which repeated its plain accuracy as "flip"."""

from __future__ import annotations

from cnnlab.report.facts import Budget, Facts, Overview, Part
from cnnlab.report.show import show_overview
from cnnlab.train.evaluate import tta_label

ROWS = [{"epoch": 1, "test_acc": 0.9, "test_acc_tta": 0.9, "seconds": 1.0, "wall": 1.0}]


def _overview(config: dict) -> dict[str, str]:
    overview = Overview("net", "digits", ("a", "b"), (1, 8, 8), 10, config, "cpu", "")
    facts = Facts(overview, None, Budget(), {"metrics": Part(ROWS)})
    (block,) = show_overview(None, facts)
    return dict(block["items"])


def test_the_tta_row_names_its_views():
    items = _overview({"flip": True, "tta_shift": 1})
    assert items["test accuracy with TTA (flip + 1-px shift)"] == "90.00 %"
    assert not any(key.endswith("(flip)") for key in items)


def test_a_run_without_views_has_no_tta_row():
    items = _overview({"flip": False, "tta_shift": 0})
    assert not [key for key in items if "TTA" in key]
    assert "test accuracy" in items


def test_the_label_reads_config_as_evaluate_does():
    assert tta_label({}) == "flip"  # flips on unless the run recorded them off
    assert tta_label({"flip": False, "tta_shift": 2}) == "2-px shift"
    assert tta_label({"flip": None, "tta_shift": 1}) == "flip + 1-px shift"
