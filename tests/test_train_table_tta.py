"""`cnnlab train`'s final table names the test-time augmentation's views as `cnnlab eval`
does, and shows no TTA row when there were none (digits train without flips: its "with TTA"
row repeated the plain accuracy)."""

import json

import pytest

from cnnlab.cli import main
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(("options", "row"), [([], None), (["--tta-shift", "1"], "1-px shift TTA")])
def test_the_tta_row_names_its_views(tmp_path, capsys, options, row):
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec()))
    quick = ["--data", "digits", "--epochs", "1", "--bn-recalibrate", "0", "--quiet"]
    assert main(["train", str(spec), *quick, *options, "--out", str(tmp_path / "r")]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "TTA" in line]
    assert [row in line for line in rows] == ([True] if row else []), rows
