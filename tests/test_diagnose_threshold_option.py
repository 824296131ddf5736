"""`cnnlab diagnose --threshold` out of [0, 1] is named as the option typed, before the run
is opened: the library's "threshold is a share of units" named a keyword the user never
typed, after the images were read."""

from __future__ import annotations

import pytest

from cnnlab.cli import main


@pytest.mark.parametrize("value", ["nan", "2", "-1"])
def test_threshold_names_the_option(capsys, tmp_path, value):
    # no run at tmp_path: the option is refused before the run is looked for
    assert main(["diagnose", str(tmp_path), f"--threshold={value}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab diagnose: error: --threshold is a share of units"), err
    assert len(err.splitlines()) == 1, err
