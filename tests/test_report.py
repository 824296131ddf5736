"""The HTML report, checked in a real browser (Debian's headless Chromium): the page loads
with no errors, every image decodes, every section is there and nothing scrolls sideways.
The screenshot of the whole page is kept in test-artifacts/report.png, taken before any
check so that it is there to look at when one fails. Without chromium the browser test fails
(`make test` installs it) unless CNNLAB_SKIP_BROWSER=1 asks to skip it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

import browser
from browser import chromium, need_chromium
from cnnlab.errors import CnnlabError, RunError
from cnnlab.report import Budget, plots, render, write_report

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
    from cnnlab.design.spec import load_spec
    from cnnlab.train import TrainConfig, train

    train_set = load_dataset("fashion-mnist", "train")
    test_set = load_dataset("fashion-mnist", "test")
    first = torch.arange(600)
    data = (train_set.subset(first, "fashion-mnist"), test_set.subset(first[:300], "fashion-mnist"))
    out = tmp_path_factory.mktemp("runs") / "tiny"
    config = TrainConfig(epochs=2, batch_size=100, diagnose_every=1)
    train(load_spec(TINY), data, out, config)
    return out


@pytest.fixture(scope="module")
def page(run_dir) -> Path:
    """The tiny run's report, written once by `write_report` for the tests that read it."""
    return write_report(run_dir, budget=BUDGET, strict=True)


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
    height: document.documentElement.scrollHeight,
    gradcam: [...document.images].filter(i => i.alt.startsWith('Grad-CAM'))
      .map(i => [i.naturalWidth, i.getBoundingClientRect().width]),
  };
  const pre = document.createElement('pre');
  pre.id = 'probe-result';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


def browse(html: str, tmp_path: Path) -> tuple[dict | None, str]:
    """Open a copy of the page with PROBE injected (its CSP widened for that one inline
    script only): (what PROBE saw, or None when it reported nothing; chromium's stderr)."""
    probed = html.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    probed = probed.replace("<head>", "<head>" + PROBE, 1)
    page = tmp_path / "probed.html"
    page.write_text(probed, encoding="utf-8")
    done = chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', done.stdout, re.S)
    if not found:
        return None, done.stderr
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    return json.loads(text.replace("&amp;", "&")), done.stderr


def screenshot(page: Path, height: int, tmp_path: Path) -> Path:
    """The whole page (a window `height` px tall, 1280 wide) as test-artifacts/report.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)  # a stale picture must not pass for this run's
    size = f"--window-size=1280,{height}"
    chromium([size, f"--screenshot={shot}", page.as_uri()], tmp_path / "shot")
    return shot


@pytest.mark.slow
def test_report_renders_in_chromium(page, run_dir, tmp_path):
    need_chromium()
    html = page.read_text(encoding="utf-8")
    seen, stderr = browse(html, tmp_path)
    # the page's own height when the probe measured it, else generously tall
    shot = screenshot(page, (seen or {}).get("height") or 16_000, tmp_path)
    assert seen is not None, f"no probe result; chromium said:\n{stderr[-2000:]}"
    assert page == run_dir / "report.html"
    assert "default-src 'none'" in html
    # self-contained: nothing is fetched (the CSP would also block it: checked below)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert seen["errors"] == []
    assert seen["sections"] == SECTIONS
    assert all(target in seen["ids"] for target in seen["toc"])  # every TOC link lands
    assert len(seen["images"]) >= 15 and all(w > 0 for w in seen["images"])
    assert seen["notes"] == []  # a complete run: every part was built
    assert seen["scrollWidth"] <= seen["innerWidth"]  # no sideways scrolling at 1280 px
    # Grad-CAM tile titles readable as shown: TILE_TITLE_PT at DPI, scaled by the page,
    # in CSS points (96 px to 72 pt)
    assert len(seen["gradcam"]) == 2
    for natural, shown in seen["gradcam"]:
        shown_pt = plots.TILE_TITLE_PT * plots.DPI / 72 * (shown / natural) * 72 / 96
        assert shown_pt >= 8, f"Grad-CAM titles are {shown_pt:.1f} pt on a 1280 px screen"
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_missing_chromium_fails_unless_the_skip_is_asked_for(monkeypatch):
    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CNNLAB_SKIP_BROWSER", raising=False)
    with pytest.raises(pytest.fail.Exception, match="CNNLAB_SKIP_BROWSER=1"):
        need_chromium()
    monkeypatch.setenv("CNNLAB_SKIP_BROWSER", "1")
    with pytest.raises(pytest.skip.Exception):
        need_chromium()


def test_gradcam_shows_one_correct_image_per_class():
    from cnnlab.report.facts import pick

    y = torch.arange(30) % 10
    pred = y.clone()
    pred[:5] = (y[:5] + 1) % 10  # five mistakes
    probs = torch.nn.functional.one_hot(pred, 10).float() * 0.9 + 0.01
    probs[:5] *= torch.tensor([0.5, 0.9, 0.7, 1.0, 0.6])[:, None]  # their confidence, 3 > 1 > 2..
    correct, wrong = pick(y, probs, 10)
    assert y[correct].tolist() == list(range(10))  # every class, in class order
    assert wrong == [3, 1, 2, 4, 0]  # most confident mistake first
    assert pick(y, probs, 2) == (correct[:2], [3, 1])


@pytest.mark.slow
def test_probe_caption_says_the_probes_are_computed_for_the_report(page):
    html = page.read_text(encoding="utf-8")
    assert "probes.json" not in html  # nothing writes one: the page must not promise it
    assert "Computed for this report: multinomial logistic regression" in html
    assert f"trained on the first {BUDGET.probe_train} training images" in html
    assert f"tested on the first {BUDGET.probe_test} test images" in html


@pytest.mark.slow
def test_corrupt_metrics_name_the_file_and_the_line(run_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    (bad / "model.safetensors").unlink()  # no model: only the metrics parts are built
    metrics = bad / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    lines[1] = lines[1][:5]  # a line cut short, as by a kill mid-write
    metrics.write_text("\n".join(lines) + "\n")
    html, _ = render(bad, BUDGET)
    assert f"{metrics} line 2 is not valid JSON (Unterminated string" in html
    metrics.write_text(lines[0] + "\n[1, 2]\n")
    html, _ = render(bad, BUDGET)
    assert f"{metrics} line 2 is not a JSON object" in html


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
def test_a_failing_part_is_a_note_or_with_strict_an_error(run_dir, monkeypatch):
    import cnnlab.explain

    def broken(*args, **kwargs):
        raise RuntimeError("gradcam exploded")

    monkeypatch.setattr(cnnlab.explain, "gradcam", broken)
    html, _ = render(run_dir, BUDGET)
    assert "Not shown: RuntimeError: gradcam exploded" in html  # a bug says it is one
    assert html.count('class="note missing"') == 1  # the other parts are all there
    with pytest.raises(RuntimeError, match="gradcam exploded"):
        render(run_dir, BUDGET, strict=True)


def test_not_a_run_directory_says_what_is_missing(tmp_path):
    with pytest.raises(RunError, match="nowhere does not exist"):
        render(tmp_path / "nowhere")
    (tmp_path / "afile").write_text("")
    with pytest.raises(RunError, match="afile is a file, not a directory"):
        render(tmp_path / "afile")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RunError, match="spec.yaml missing"):
        render(tmp_path)


def cli_report(args: list[str], capsys) -> tuple[int, list[str]]:
    """`cnnlab report ARGS`: (exit code, stderr lines); nothing may reach stdout."""
    from cnnlab.cli import main

    code = main(["report", *args])
    out, err = capsys.readouterr()
    assert out == ""
    return code, err.splitlines()


def test_cli_mistyped_run_is_one_line_exit_2_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = cli_report(["typo-run"], capsys)
    assert code == 2 and len(err) == 1
    assert "typo-run does not exist" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_cli_file_as_run_says_so_and_leaves_it_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("notes")
    code, err = cli_report(["afile"], capsys)
    assert code == 2 and len(err) == 1
    assert "afile is a file, not a directory" in err[0]
    assert list(tmp_path.iterdir()) == [tmp_path / "afile"]
    assert (tmp_path / "afile").read_text() == "notes"


def test_cli_incomplete_run_names_what_is_missing_and_creates_no_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    code, err = cli_report(["run", "--out", "reports/page.html"], capsys)
    assert code == 2 and len(err) == 1
    assert "spec.yaml missing" in err[0] and "config.json" not in err[0]
    assert sorted(tmp_path.rglob("*")) == [tmp_path / "run", tmp_path / "run" / "config.json"]


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
    run = tmp_path / "run"  # looks like a run: the run is checked before --out
    run.mkdir()
    (run / "spec.yaml").write_text("name: x\n")
    (run / "config.json").write_text("{}")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CnnlabError, match="cannot create"):
        write_report(run, out=blocker / "sub" / "r.html")


def test_out_may_be_a_directory_or_a_new_path(tmp_path):
    from cnnlab.report import report_path

    assert report_path(tmp_path / "run", out=tmp_path) == tmp_path / "report.html"
    new = tmp_path / "a" / "b" / "page.html"
    assert report_path(tmp_path / "run", out=new) == new and new.parent.is_dir()
    assert report_path(tmp_path / "run") == tmp_path / "run" / "report.html"
    assert not (tmp_path / "run").exists()  # no --out: RUN itself is never created
    assert report_path(tmp_path, out=f"{tmp_path}/new/") == tmp_path / "new" / "report.html"


def test_out_never_replaces_a_file_that_is_not_a_page(tmp_path):
    from cnnlab.report import report_path

    code = tmp_path / "mynet.py"  # `--out mynet.py` replaced the model's code with the page
    code.write_text("import torch\n")
    with pytest.raises(
        CnnlabError, match=r"mynet\.py does not end in \.html.*--out \S*mynet\.html"
    ):
        report_path(tmp_path / "run", out=code)
    assert code.read_text() == "import torch\n"
    old = tmp_path / "old.HTML"  # an earlier page is replaced, as RUN/report.html is
    old.write_text("<html></html>")
    assert report_path(tmp_path / "run", out=old) == old


def test_out_not_a_page_name_is_refused_before_and_after_it_exists(tmp_path):
    """`--out mypage` was accepted and the page written there; the same command again was
    refused, since mypage was now a file that is not an .html page. A name not ending in
    .html/.htm is refused both times, with the .html name to give instead."""
    from cnnlab.report import report_path

    name = tmp_path / "mypage"
    for exists in (False, True):  # the second time, as if an earlier run had written it
        with pytest.raises(CnnlabError, match=r"mypage does not end in \.html.*mypage\.html"):
            report_path(tmp_path / "run", out=name)
        assert name.exists() == exists
        name.write_text("notes")
    assert name.read_text() == "notes"
    assert report_path(tmp_path / "run", out=f"{name}.htm") == tmp_path / "mypage.htm"


def test_unreadable_config_is_a_run_error(tmp_path):
    (tmp_path / "spec.yaml").write_text("name: x\n")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RunError, match="config.json"):
        render(tmp_path, BUDGET)


def test_a_run_of_a_model_from_code_needs_no_spec(tmp_path):
    from cnnlab.report import check_run

    (tmp_path / "config.json").write_text(json.dumps({"model": {"kind": "file"}}))
    assert check_run(tmp_path) == tmp_path
    (tmp_path / "config.json").write_text(json.dumps({"model": {"kind": "spec"}}))
    with pytest.raises(RunError, match="spec.yaml missing"):
        check_run(tmp_path)
