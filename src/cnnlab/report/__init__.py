"""One self-contained HTML report per run (`cnnlab report RUN` writes RUN/report.html)."""

from cnnlab.report.html import Budget, check_run, open_run, render, report_path, write_report

__all__ = ["Budget", "check_run", "open_run", "render", "report_path", "write_report"]
