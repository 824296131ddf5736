"""`CNNLAB_ACCEPT_CHANGED_CODE=1` opens a run whose model file changed since it was made; the
commands then went on without a word, each time, however long ago the variable was set. Each
command that opens the run now says so in one line on stderr, naming the file and both
hashes. Truth: hashlib's SHA-256 of the file before and after the edit."""

from __future__ import annotations

import hashlib

import pytest

from cnnlab.cli import main
from tiny_nets import imported_run, noise_png, tiny_net_source

pytestmark = pytest.mark.usefixtures("one_thread")


def test_each_command_says_the_changed_code_it_was_let_use(tmp_path, capsys, monkeypatch):
    run = imported_run(tmp_path, tiny_net_source(), data="digits")
    code = tmp_path / "nets.py"
    then = hashlib.sha256(code.read_bytes()).hexdigest()
    image = noise_png(tmp_path / "x.png", size=8)
    commands = (
        ["eval", str(run)],
        ["predict", str(run), str(image)],
        ["diagnose", str(run), "--limit", "16"],
        ["explain", str(run), str(image), "--out", str(tmp_path / "explained")],
    )
    for argv in commands:  # as made: nothing to say
        assert main(argv) == 0
        assert "note:" not in capsys.readouterr().err
    code.write_text(code.read_text() + "# a comment added later\n")
    now = hashlib.sha256(code.read_bytes()).hexdigest()
    monkeypatch.setenv("CNNLAB_ACCEPT_CHANGED_CODE", "1")
    for argv in commands:
        assert main(argv) == 0
        notes = [n for n in capsys.readouterr().err.splitlines() if "has changed" in n]
        assert notes == [
            f"note: {run}: {code} has changed since the run was imported (sha256 {then[:12]} "
            f"then, {now[:12]} now); the model is built from it as it is now "
            "(CNNLAB_ACCEPT_CHANGED_CODE=1), so it may not be the network the weights were "
            "imported as"
        ], argv


def test_the_report_says_its_model_was_built_from_changed_code(tmp_path, monkeypatch):
    """The report's Spec part showed the record of the file as trained (its old hash) for a
    model built from the file as it is now."""
    from cnnlab.report.sources import Budget, Sources
    from cnnlab.train.rundir import load_run

    run = imported_run(tmp_path, tiny_net_source(), data="digits")
    code = tmp_path / "nets.py"
    assert "changed" not in Sources(run, load_run(run), None, Budget()).spec_text()
    code.write_text(code.read_text() + "# a comment added later\n")
    now = hashlib.sha256(code.read_bytes()).hexdigest()
    monkeypatch.setenv("CNNLAB_ACCEPT_CHANGED_CODE", "1")
    text = Sources(run, load_run(run), None, Budget()).spec_text()
    assert text.splitlines()[-1] == (
        f"# {code} has changed since: sha256 {now} now; this report's model is built from it "
        "as it is now (CNNLAB_ACCEPT_CHANGED_CODE=1)"
    )
