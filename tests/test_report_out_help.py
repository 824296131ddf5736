"""`cnnlab report --help` says what --out takes: an .html page or a directory (anything else is
refused, html.py); it said "file (or directory)", and `--out mypage` was then refused."""

from __future__ import annotations

import pytest

from cnnlab.cli import main


def test_report_help_says_out_is_an_html_file_or_a_directory(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    out = text[text.rindex("--out OUT") :]  # the option, not the usage line
    assert "an .html (or .htm) file, or a directory" in out[:200]
