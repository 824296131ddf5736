"""`cnnlab report` on a run whose page cannot show every part: the terminal says which parts
and why, as the page does. Truth: the page's own notes."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_command_names_the_parts_the_page_does_not_show(tmp_path, capsys):
    """Its data moved, a run's report said only 'wrote .../report.html (0.1 MiB)', exit 0,
    and 9 of its parts read 'Not shown: ... cannot load its data'. A run of the default
    recipe (no per-epoch diagnostics, the run's choice) has nothing to say."""
    from cnnlab.cli import main
    from explorer_runs import shapes_run

    run = shapes_run(tmp_path, 6, batch_size=4, val_fraction=0.2)
    args = ["report", str(run), "--eval-images", "8"]
    assert main(args) == 0
    assert capsys.readouterr().err == ""  # every part shown
    (tmp_path / "data").rename(tmp_path / "moved")
    assert main(args) == 0
    err = capsys.readouterr().err.splitlines()
    page = (run / "report.html").read_text()
    notes = re.findall(r'<p class="note missing">Not shown: ([^<]*)</p>', page)
    assert err[0] == f"note: {len(notes)} parts of the page not shown:", err
    assert len(err) == 1 + len(set(notes)) and len(notes) >= 5, err
    assert err[1].startswith("  Confusion matrix, Accuracy per class, Most-confused pairs, ")
    assert "cannot load its data" in err[1] and "--data NEW_PLACE" in err[1], err


def test_a_run_without_weights_is_told_the_whole_command_that_finishes_it(tmp_path):
    """'resume it with `cnnlab train ... --resume`' left the user to guess the '...'; the
    run's own directory is all `cnnlab train --resume` needs (serve says the same)."""
    from cnnlab.report.html import open_run
    from explorer_runs import shapes_run

    run = shapes_run(tmp_path, 4, batch_size=4, val_fraction=0.25)
    (run / "model.safetensors").unlink()
    assert open_run(run)[1].endswith(f"continue it with `cnnlab train --resume --out {run}`")


def test_a_run_still_training_is_told_so_not_to_resume(tmp_path):
    """A run whose training holds its lock was told to finish it with --resume, which the
    lock refuses; the truth: the PID RunDir's lock holds."""
    import os

    from cnnlab.report.html import open_run
    from cnnlab.train.rundir import RunDir
    from explorer_runs import shapes_run

    run = shapes_run(tmp_path, 4, batch_size=4, val_fraction=0.25)
    (run / "model.safetensors").unlink()
    writing = RunDir.open(run, resume=True, force=False)  # as `train --resume` holds it
    try:
        assert open_run(run)[1] == (
            f"{run / 'model.safetensors'} is missing: it is still training (cnnlab "
            f"process {os.getpid()}); wait for it to end"
        )
    finally:
        writing.close()
    assert "--resume" in open_run(run)[1]
