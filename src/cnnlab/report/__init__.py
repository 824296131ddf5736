"""One self-contained HTML report per run (`cnnlab report RUN` writes RUN/report.html):
`facts` gathers what to show from library calls, `show` draws it, `html` writes the page."""

from cnnlab.report.html import check_run, open_run, render, report_path, write_report
from cnnlab.report.sources import Budget

__all__ = ["Budget", "check_run", "open_run", "render", "report_path", "write_report"]
