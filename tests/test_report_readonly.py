"""`cnnlab report` into a directory it cannot write: one line, exit 2, and its temp file is
one the run's cleanup knows. A read-only mount is simulated (tests run as root, and root
ignores chmod): renaming fails with EROFS, and so does unlink, as on a real read-only mount
where unlink fails even for a file that was never made."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.train.run_files import temp_files


@pytest.fixture
def fake_run(tmp_path, monkeypatch) -> Path:
    """A directory `check_run` accepts, with the costly page rendering replaced."""
    import cnnlab.report.html as html

    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text("name: x\n")
    (run / "config.json").write_text("{}")
    monkeypatch.setattr(html, "render", lambda *a, **k: ("<html></html>", {}))
    return run


def read_only(monkeypatch, renamed: list[str] | None = None) -> None:
    def refuse(src, *args, **kwargs):
        if renamed is not None:
            renamed.append(os.fspath(src))
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(src))

    monkeypatch.setattr(os, "replace", refuse)
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: refuse(self))


def test_report_on_a_read_only_run_is_a_cnnlab_error_naming_out(fake_run, monkeypatch):
    from cnnlab.report import write_report

    read_only(monkeypatch)
    with pytest.raises(CnnlabError) as caught:
        write_report(fake_run)
    message = str(caught.value)
    assert "Read-only file system" in message and "--out" in message
    assert str(fake_run / "report.html") in message


def test_cli_report_on_a_read_only_run_is_one_line_exit_2(fake_run, monkeypatch, capsys):
    from cnnlab.cli import main

    read_only(monkeypatch)
    code = main(["report", str(fake_run)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1, err
    assert "Read-only file system" in err[0] and "--out" in err[0]


def test_report_temp_file_is_one_the_run_cleanup_removes(fake_run, monkeypatch):
    from cnnlab.report import write_report

    renamed: list[str] = []
    read_only(monkeypatch, renamed)
    with pytest.raises(CnnlabError):
        write_report(fake_run)
    assert renamed, "the page was not written through a temp file"
    monkeypatch.undo()  # the temp file stays (unlink failed), as after a kill
    assert Path(renamed[0]) in temp_files(fake_run)


def test_atomic_write_on_a_read_only_mount_is_a_run_error(tmp_path, monkeypatch):
    from cnnlab.errors import RunError
    from cnnlab.train.checkpoint import atomic_write

    read_only(monkeypatch)
    with pytest.raises(RunError, match="Read-only file system"):
        atomic_write(tmp_path / "metrics.jsonl", b"{}\n")
