"""One self-contained HTML report per run (`cnnlab report RUN` writes RUN/report.html)."""

from cnnlab.report.html import Budget, open_run, render, report_path, write_report

__all__ = ["Budget", "open_run", "render", "report_path", "write_report"]
