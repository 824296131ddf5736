"""Headless Chromium for the browser tests (report, lab pages, explorer): where it is, the
rule for a machine without it, and one way to run it.

A browser test is skipped only when asked to (CNNLAB_SKIP_BROWSER=1): one that silently
vanished would pass `make test` on a machine where chromium failed to install."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless, offline, no first-run work: for the command line and for playwright's launch.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def need_chromium() -> str:
    """The chromium executable; skip when CNNLAB_SKIP_BROWSER=1, fail when it is missing."""
    if os.environ.get("CNNLAB_SKIP_BROWSER") == "1":
        pytest.skip("CNNLAB_SKIP_BROWSER=1: browser test skipped on request")
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"chromium not found at {CHROMIUM}: install it (`make test` does) "
            "or set CNNLAB_SKIP_BROWSER=1 to skip the browser test"
        )
    return CHROMIUM


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    """Run headless Chromium with `args` (a later --window-size wins over the 1280×800 here)
    and its own profile directory; its output captured, never raising on its exit code."""
    flags = [*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,800", "--hide-scrollbars"]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


@contextlib.contextmanager
def opened(url: str, width: int = 1400):
    """(page, problems): a served page (the explorer) loaded at `url` in headless Chromium,
    `width` px wide; problems: console errors, page errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=need_chromium(), args=FLAGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(f"error: {e}"))
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        try:
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            yield page, problems
        finally:
            browser.close()
