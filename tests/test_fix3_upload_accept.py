"""The upload's file chooser offers every format the server reads (`data.image.IMAGE_FORMATS`,
one list): the page's hard-coded accept="image/png,image/jpeg,image/bmp,image/webp" hid .tif,
.gif and .avif files the server takes. Truths: IMAGE_FORMATS, and Chromium's own input."""

from __future__ import annotations

from pathlib import Path

from browser import FLAGS, need_chromium
from cnnlab.data.image import IMAGE_FORMATS
from test_review_explorer_page import run_dir, server  # noqa: F401 (fixtures)

STATIC = Path(__file__).parents[1] / "src" / "cnnlab" / "explorer" / "static"


def test_the_page_keeps_no_list_of_its_own():
    assert "image/png" not in (STATIC / "index.html").read_text()


def test_the_file_chooser_accepts_what_the_server_reads(server):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=need_chromium(), args=FLAGS)
        page = browser.new_page()
        try:
            page.goto(server)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            accept = page.get_attribute("#upload", "accept").split(",")
            heading = page.evaluate("document.querySelector('#upload-formats')?.textContent")
        finally:
            browser.close()
    assert sorted(accept) == sorted(IMAGE_FORMATS)
    assert {".tif", ".tiff", ".gif", ".avif", ".jpeg"} <= set(accept)
    assert heading.split("/") == ["PNG", "JPEG", "BMP", "WebP", "TIFF", "GIF", "AVIF"]
