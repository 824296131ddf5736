"""The explorer's page as native ES modules, one job each: every module the page imports,
followed from its <script type="module"> through the import statements, is a file of static/,
served as JavaScript (a module served as anything else is refused by the browser, and the page
stays blank), shipped as package data, within the house's file length, and free of innerHTML;
and the page loads them all in Chromium without a console error. Truths: the page's own
<script> tag and import statements, pyproject.toml's package data, the browser's resource
timing and console."""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

from browser import opened
from test_house import MAX_FILE_LINES

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "cnnlab" / "explorer" / "static"
# the essences the HTML standard and Python's mimetypes give JavaScript
JS_TYPES = {"text/javascript", "application/javascript"}
# import … from "./x.js", import "./x.js", import("./x.js"): the relative specifiers a module reads
IMPORT = re.compile(r"""\bimport\b[^;'"]*?(?:\bfrom\s*|\(\s*|\s)["'](\./[^"']+)["']""")


def _package_globs() -> list[str]:
    """The cnnlab globs of [tool.setuptools.package-data] (tomllib is Python ≥ 3.11)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"\[tool\.setuptools\.package-data\]\s*cnnlab\s*=\s*\[(.*?)\]", text, re.S)
    return re.findall(r'"([^"]+)"', block.group(1))


def _modules_of_the_page(client) -> dict[str, str]:
    """{file name: served text} of every module the page loads, from its script tag on."""
    page = client.get("/").text
    scripts = re.findall(r"<script\b([^>]*)>", page)
    assert len(scripts) == 1 and 'type="module"' in scripts[0], scripts
    todo = re.findall(r'src="/static/([^"]+)"', scripts[0])
    served: dict[str, str] = {}
    while todo:
        name = todo.pop()
        if name in served:
            continue
        r = client.get(f"/static/{name}")
        assert r.status_code == 200, (name, r.status_code)
        kind = r.headers["content-type"].split(";")[0].strip()
        assert kind in JS_TYPES, (name, r.headers["content-type"])
        served[name] = r.text
        todo += [spec.removeprefix("./") for spec in IMPORT.findall(r.text)]
    return served


def test_every_module_the_page_imports_is_served_as_javascript_and_shipped(client):
    served = _modules_of_the_page(client)
    on_disk = {p.name for p in STATIC.glob("*.js")}
    assert set(served) == on_disk, (sorted(served), sorted(on_disk))  # none missing, none left
    assert len(served) > 1  # the page is split, not one script doing everything
    globs = _package_globs()
    for name, text in served.items():
        assert text == (STATIC / name).read_text(), name
        assert any(fnmatch(f"explorer/static/{name}", g) for g in globs), (name, globs)
        lines = len(text.splitlines())
        assert lines <= MAX_FILE_LINES, f"static/{name}: {lines} lines"
        assert "innerHTML" not in text, name  # the run's texts are set as text, never as HTML


def test_the_page_loads_every_module_in_chromium_without_a_console_error(server):
    loaded = (
        "performance.getEntriesByType('resource').map((e) => e.name)"
        ".filter((n) => n.endsWith('.js')).map((n) => n.split('/').pop())"
    )
    with opened(server) as (page, problems):
        names = page.evaluate(loaded)
        # a module's names are not the window's: those the console and the tests use by name
        named = page.evaluate("[typeof state, typeof loadActmax]")
    assert sorted(names) == sorted(p.name for p in STATIC.glob("*.js")), names
    assert named == ["object", "function"], named
    assert not problems, problems


def test_modules_are_javascript_even_where_the_system_maps_js_otherwise(run_dir):
    """mimetypes reads the system's table (on Windows the registry), which can map .js to
    text/plain; a module served so is refused and the page stays blank."""
    import mimetypes

    from fastapi.testclient import TestClient

    from cnnlab.explorer import create_app

    mimetypes.add_type("text/plain", ".js")  # as such a system's table says
    try:
        r = TestClient(create_app(run_dir)).get("/static/app.js")
        assert r.headers["content-type"].split(";")[0].strip() in JS_TYPES, r.headers
    finally:
        mimetypes.add_type("text/javascript", ".js")
