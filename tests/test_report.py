"""The HTML report, checked in a real browser (Debian's headless Chromium): the page loads
with no errors, every image decodes, every section is there and nothing scrolls sideways.
The screenshot is kept in test-artifacts/report.png."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from cnnlab.errors import CnnlabError, RunError
from cnnlab.report import Budget, render, write_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SECTIONS = ["run", "architecture", "training", "results", "attention", "features", "health"]
# Small budgets: the test checks the page, not the numbers.
BUDGET = Budget(
    eval_images=600, diagnose_images=200, gradient_images=64, actmax_steps=8, probe_train=300,
    probe_test=200, probe_epochs=5, erf_inputs=4, actmax_stages=2, actmax_channels=2,
)  # fmt: skip
TINY = {
    "name": "tiny",
    "input": [1, 28, 28],
    "layers": [
        {"conv": {"filters": 8, "kernel": 3, "padding": "same"}},
        "batchnorm",
        "relu",
        {"maxpool": 2},
        {"conv": {"filters": 16, "kernel": 3, "padding": "same"}},
        "batchnorm",
        "relu",
        {"maxpool": 2},
        {"conv": {"filters": 16, "kernel": 3, "padding": "same"}},
        "relu",
        "gap",
        {"linear": 10},
    ],
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real run: E's trainer, two short epochs on 600 Fashion-MNIST images (a few seconds)."""
    from cnnlab.data import load_dataset
    from cnnlab.spec import load_spec
    from cnnlab.train import TrainConfig, train

    train_set = load_dataset("fashion-mnist", "train")
    test_set = load_dataset("fashion-mnist", "test")
    first = torch.arange(600)
    data = (train_set.subset(first, "fashion-mnist"), test_set.subset(first[:300], "fashion-mnist"))
    out = tmp_path_factory.mktemp("runs") / "tiny"
    config = TrainConfig(epochs=2, batch_size=100, diagnose_every=1)
    train(load_spec(TINY), data, out, config)
    return out


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1280,800", "--hide-scrollbars",
    ]  # fmt: skip
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=60, check=False
    )


# Records errors, CSP violations and console.error, then (on load) what the test checks.
PROBE = """<script>
window.__errors = [];
addEventListener('error', e => __errors.push('error: ' + (e.message ||
  (e.target && e.target.tagName) || '?')), true);
addEventListener('securitypolicyviolation', e => __errors.push('csp: ' + e.violatedDirective));
const originalError = console.error;
console.error = (...a) => { __errors.push('console: ' + a.join(' ')); originalError(...a); };
addEventListener('load', () => {
  const result = {
    errors: __errors,
    images: [...document.images].map(i => i.naturalWidth),
    sections: [...document.querySelectorAll('section')].map(s => s.id),
    toc: [...document.querySelectorAll('nav a')].map(a => a.getAttribute('href').slice(1)),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    notes: [...document.querySelectorAll('.missing')].map(n => n.textContent),
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: innerWidth,
  };
  const pre = document.createElement('pre');
  pre.id = 'probe-result';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


def browse(html: str, tmp_path: Path) -> dict:
    """Open a copy of the page with PROBE injected (its CSP widened for that one inline
    script only) and return what PROBE saw."""
    assert "default-src 'none'" in html
    probed = html.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    probed = probed.replace("<head>", "<head>" + PROBE, 1)
    page = tmp_path / "probed.html"
    page.write_text(probed, encoding="utf-8")
    done = chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe result; chromium said:\n{done.stderr[-2000:]}"
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    return json.loads(text.replace("&amp;", "&"))


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
def test_report_renders_in_chromium(run_dir, tmp_path):
    page = write_report(run_dir, budget=BUDGET)
    assert page == run_dir / "report.html"
    html = page.read_text(encoding="utf-8")
    # self-contained: nothing is fetched (the CSP would also block it: checked below)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    seen = browse(html, tmp_path)
    assert seen["errors"] == []
    assert seen["sections"] == SECTIONS
    assert all(target in seen["ids"] for target in seen["toc"])  # every TOC link lands
    assert len(seen["images"]) >= 15 and all(w > 0 for w in seen["images"])
    assert seen["notes"] == []  # a complete run: every part was built
    assert seen["scrollWidth"] <= seen["innerWidth"]  # no sideways scrolling at 1280 px

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    chromium(["--window-size=1280,9000", f"--screenshot={shot}", page.as_uri()], tmp_path / "shot")
    assert shot.is_file() and shot.stat().st_size > 10_000


@pytest.mark.slow
def test_run_missing_artefacts_still_renders_and_says_what_is_missing(run_dir, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(run_dir, partial)
    (partial / "metrics.jsonl").unlink()
    (partial / "model.safetensors").unlink()
    html, _ = render(partial, BUDGET)
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    assert "model.safetensors is missing" in html
    assert "metrics.jsonl is missing" in html
    assert "test accuracy" not in html  # no made-up numbers


@pytest.mark.slow
def test_a_failing_part_becomes_a_note_and_the_rest_renders(run_dir, monkeypatch):
    import cnnlab.explain

    def broken(*args, **kwargs):
        raise RuntimeError("gradcam exploded")

    monkeypatch.setattr(cnnlab.explain, "gradcam", broken)
    for name in ("linear_probe", "activation_maximization"):
        monkeypatch.delattr(cnnlab.explain, name, raising=False)
    html, _ = render(run_dir, BUDGET)
    assert "RuntimeError: gradcam exploded" in html
    assert "cnnlab.explain.linear_probe is not available" in html
    assert "cnnlab.explain.activation_maximization is not available" in html
    assert html.count('class="note missing"') == 3  # the other parts are all there


def test_not_a_run_directory_says_what_is_missing(tmp_path):
    with pytest.raises(RunError, match="is not a directory"):
        render(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RunError, match="spec.yaml missing"):
        render(tmp_path)


@pytest.mark.slow
def test_weights_not_matching_the_spec_name_the_tensor(run_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    weights = load_file(bad / "model.safetensors")
    weights["4.weight"] = torch.zeros(3, 3, 3, 3)  # the second conv, wrong shape
    save_file(weights, bad / "model.safetensors")
    with pytest.raises(RunError, match=r"4\.weight"):
        render(bad, BUDGET)


def test_bad_budget_and_out_fail_at_once_with_one_clear_error(tmp_path):
    """Before any model work: a budget below 1 (the CLI's --eval-images -3 would silently
    drop the last 3 images) and an --out that cannot be created."""
    with pytest.raises(CnnlabError, match=r"eval_images \(--eval-images\) must be .* >= 1"):
        Budget(eval_images=-3)
    with pytest.raises(CnnlabError, match="probe_epochs"):
        Budget(probe_epochs=0)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CnnlabError, match="cannot create"):
        write_report(tmp_path / "nowhere", out=blocker / "sub" / "r.html")


def test_out_may_be_a_directory_or_a_new_path(tmp_path):
    from cnnlab.report import report_path

    assert report_path(tmp_path / "run", out=tmp_path) == tmp_path / "report.html"
    new = tmp_path / "a" / "b" / "page.html"
    assert report_path(tmp_path / "run", out=new) == new and new.parent.is_dir()
    assert report_path(tmp_path / "run") == tmp_path / "run" / "report.html"
    assert report_path(tmp_path, out=f"{tmp_path}/new/") == tmp_path / "new" / "report.html"


def test_unreadable_config_is_a_run_error(tmp_path):
    (tmp_path / "spec.yaml").write_text("name: x\n")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RunError, match="config.json"):
        render(tmp_path, BUDGET)
