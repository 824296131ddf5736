"""The documentation against the code: links resolve inside the repository, every dotted name
the concept map cites imports, and every command it shows exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from cnnlab.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _links(path: Path) -> list[str]:
    return [t for t in LINK.findall(path.read_text()) if not t.startswith(("http", "#", "mailto"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_resolve_inside_the_repository(doc):
    for target in _links(doc):
        resolved = (doc.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{doc.name} links outside the repository: {target}"
        assert resolved.exists(), f"{doc.name} links to a missing file: {target}"


def _resolve(dotted: str):
    """Import the longest module prefix of `dotted`, then walk attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def test_concept_map_names_exist():
    text = (ROOT / "docs" / "concepts.md").read_text()
    names = sorted(set(re.findall(r"`(cnnlab(?:\.\w+)+)`", text)))
    assert len(names) > 20
    for name in names:
        assert _resolve(name) is not None, name


def test_concept_map_commands_exist():
    text = (ROOT / "docs" / "concepts.md").read_text()
    commands = set(re.findall(r"`cnnlab (\w+)", text))
    choices = _parser()._subparsers._group_actions[0].choices
    assert commands and commands <= set(choices), commands - set(choices)


def test_concept_map_lab_experiments_exist():
    lab = pytest.importorskip("cnnlab.lab")
    text = (ROOT / "docs" / "concepts.md").read_text()
    cited = set(re.findall(r"lab `(\w+)`", text)) | set(re.findall(r"--only (\w+)", text))
    cited |= {n for group in re.findall(r"lab `\w+`((?:, `\w+`)+)", text) for n in
              re.findall(r"`(\w+)`", group)}  # fmt: skip
    known = {experiment.name for experiment in lab.experiments()}
    assert cited and cited <= known, cited - known


# A command in a code span or block: `cnnlab NAME` and its options up to the span's end, a
# comment (`#`), `;` or a table's cell border (` | `, a `\|` inside a cell is text).
COMMAND = re.compile(r"cnnlab (\w+)((?:[^`#;\n|]|\|(?!\s))*)")
OWN_DOCS = [ROOT / "README.md", *(ROOT / "docs" / n for n in ("concepts.md", "spec.md"))]
OWN_DOCS.append(ROOT / "docs" / "reliability.md")


@pytest.mark.parametrize("doc", OWN_DOCS, ids=lambda p: p.name)
def test_every_option_a_command_is_shown_with_exists(doc):
    """`cnnlab visualize RUN --erf LAYER` was shown while visualize had no --erf."""
    commands = _parser()._subparsers._group_actions[0].choices
    shown = [m.groups() for m in COMMAND.finditer(doc.read_text()) if m.group(1) in commands]
    assert len(shown) > 3 or doc.name == "spec.md", shown
    for name, rest in shown:
        known = set(commands[name]._option_string_actions)
        flags = re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest)
        assert set(flags) <= known, f"{doc.name}: cnnlab {name}{rest}: {set(flags) - known}"


def _readme_block(opening: str) -> str:
    """The README's ```text block that starts with `opening`, its first line left out."""
    text = (ROOT / "README.md").read_text()
    start = text.index("```text\n" + opening) + len("```text\n" + opening)
    return text[start : text.index("```", start)].lstrip("\n")


def test_readme_summary_output_is_what_the_command_prints(capsys):
    from cnnlab.cli import main

    assert main(["summary", "fmnist-tf", "--input", "1,28,28"]) == 0
    assert capsys.readouterr().out == _readme_block("$ cnnlab summary fmnist-tf --input 1,28,28")


def _tests_module(name: str):
    """A module of tests/ imported by name (tests/ is no package)."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "tests"))


def test_reliability_counts_are_the_tables_the_tests_run():
    """docs/reliability.md's per-command case counts and the malformed-reference count are
    the lengths of the tables in tests/test_bad_input.py and tests/test_source.py."""
    text = (ROOT / "docs" / "reliability.md").read_text()
    cases = _tests_module("test_bad_input").CASES
    counted = {c: str(sum(case[0] == c for case in cases)) for c in {case[0] for case in cases}}
    rows = dict(re.findall(r"^\| (\w+) \| (\d+) \|", text, re.M))  # the class table's too
    assert {c: rows.get(c) for c in counted} == counted
    assert f"| **all** | **{len(cases)}** |" in text and f"({len(cases)} cases," in text
    bad_refs = _tests_module("test_source").BAD_REFS
    assert f"`tests/test_source.py` tries {len(bad_refs)} malformed" in text


@pytest.mark.parametrize("doc", OWN_DOCS, ids=lambda p: p.name)
def test_every_repository_path_a_doc_names_exists(doc):
    """A test, benchmark or source file named in backticks (`tests/test_faults.py`) is there."""
    paths = re.findall(r"`((?:tests|benchmarks|src|docs|\.ci)/[\w/.-]*\w)`", doc.read_text())
    for path in paths:
        assert (ROOT / path).exists(), f"{doc.name} names a missing file: {path}"


def test_concept_map_lints_exist():
    """Each lint code the concept map names (`lint `floor``) is one `summary` can emit."""
    text = (ROOT / "docs" / "concepts.md").read_text()
    named = {c for group in re.findall(r"lints? ((?:`[\w-]+`(?:, )?)+)", text)
             for c in re.findall(r"`([\w-]+)`", group)}  # fmt: skip
    source = (ROOT / "src" / "cnnlab" / "design" / "summary" / "lints.py").read_text()
    assert len(named) >= 7, named
    assert all(f'"{code}", ' in source for code in named), named


def _readme_python() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_summary_snippet_prints_what_its_comment_says(capsys):
    snippet = next(s for s in _readme_python() if "cnnlab.summary(model" in s)
    exec(compile(snippet, "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert printed == re.search(r"print\(.*\)\s+# (.*)", snippet).group(1).strip()


def test_readme_doctest_snippets_pass():
    import doctest

    for snippet in (s for s in _readme_python() if s.startswith(">>>")):
        test = doctest.DocTestParser().get_doctest(snippet, {}, "README.md", "README.md", 0)
        assert doctest.DocTestRunner().run(test).failed == 0, snippet


def test_readme_model_code_trains_through_the_cli(tmp_path, monkeypatch, capsys):
    """The README's mynet.py, pasted as it stands, runs under `summary --model` with the rows
    it names, and one digits epoch trains and imports through the commands it shows."""
    from cnnlab.cli import main

    snippet = next(s for s in _readme_python() if s.startswith("# mynet.py"))
    (tmp_path / "mynet.py").write_text(snippet)
    monkeypatch.chdir(tmp_path)
    model = ["--model", "mynet.py:make_net", "--model-arg", "width=16"]
    assert main(["summary", *model, "--input", "1,28,28"]) == 0
    assert "blocks.0.relu #2" in capsys.readouterr().out
    quick = ["--data", "digits", "--epochs", "1", "--quiet"]
    assert main(["train", *model, *quick, "--out", "r"]) == 0
    weights = ["--weights", "r/model.safetensors", "--data", "digits", "--out", "imported"]
    assert main(["import", *model, *weights]) == 0


def test_readme_transformers_wrapper_imports_the_plain_model_s_weights(tmp_path, monkeypatch):
    """The README's hfnet.py, pasted as it stands: its subclass keeps the weights' names, so
    `cnnlab import` takes the state_dict of the plain transformers model, no prefix to strip."""
    from safetensors.torch import save_file
    from transformers import ConvNextForImageClassification

    from cnnlab.cli import main

    snippet = next(s for s in _readme_python() if s.startswith("# hfnet.py"))
    (tmp_path / "hfnet.py").write_text(snippet)
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(snippet, "hfnet.py", "exec"), names)
    plain = ConvNextForImageClassification(names["make_net"]().config)
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, "hf.safetensors")
    ref = ["--model", "hfnet.py:make_net", "--weights", "hf.safetensors", "--data", "digits"]
    assert main(["import", *ref, "--out", "imported"]) == 0
    assert main(["eval", "imported"]) == 0


def test_readme_python_api_block_runs_on_the_run_it_names(tmp_path, monkeypatch):
    """The README's explain/diagnose block, pasted as it stands after the `runs/mine` its
    commands train (one digits epoch here), runs: it used `model`, `x`, `xtr` it never made,
    and a ResNet's "layer2" the model has not. Grad-CAM and saliency give one map per image."""
    from cnnlab.cli import main

    snippets = _readme_python()
    (tmp_path / "mynet.py").write_text(next(s for s in snippets if s.startswith("# mynet.py")))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = ["--model", "mynet.py:make_net", "--model-arg", "width=16", "--data", "digits"]
    assert main(["train", *model, "--epochs", "1", "--quiet", "--out", "runs/mine"]) == 0
    block = next(s for s in snippets if "explain.gradcam(model, x)" in s)
    names: dict = {}
    exec(compile(block, "README.md", "exec"), names)
    assert tuple(names["cam"].shape) == tuple(names["sal"].shape) == (64, 8, 8)
    assert "input" in names["acc"] and names["erf"].layer == "blocks.2"


def test_concept_map_report_parts_exist():
    """Each report part the concept map names (`report "receptive field"`) is a section or part
    title of the page `cnnlab report` writes."""
    from cnnlab.report.show import SECTIONS

    titles = {t.lower() for _, title, parts in SECTIONS for t in (title, *(p[0] for p in parts))}
    text = (ROOT / "docs" / "concepts.md").read_text()
    named = {n.lower() for group in re.findall(r'report ((?:"[^"]+"(?:, )?)+)', text)
             for n in re.findall(r'"([^"]+)"', group)}  # fmt: skip
    assert len(named) >= 7 and named <= titles, named - titles


def test_readme_demo_log_ends_with_what_make_demo_echoes():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("\ndemo:") :].split("\n\n")[0]
    echoed = [line for line in re.findall(r'@echo "?(.*?)"?$', recipe, re.M) if line]
    block = _readme_block("$ make demo | tee demo.log")
    assert len(echoed) == 4 and all(line in block for line in echoed), echoed


def test_readme_names_every_file_of_a_run_directory():
    from cnnlab.train import run_files

    text = (ROOT / "README.md").read_text()
    paragraph = text[text.index("A run directory holds") :].split("\n\n")[0]
    names = [n for n in run_files.WRITTEN if n != run_files.REPORT]  # the report: its section
    assert all(f"`{name}`" in paragraph for name in names), names


def test_reliability_run_file_row_counts_its_cases():
    """The run-files row's kinds (12 config edits, 8 checkpoints, ...) are the lengths of
    tests/test_rundir.py's tables, and its total their sum (it said 45 of 37)."""
    rundir = _tests_module("test_rundir")
    text = (ROOT / "docs" / "reliability.md").read_text()
    row = next(r for r in text.splitlines() if r.startswith("| run files edited after training"))

    def cases(test) -> int:
        return len(test.pytestmark[0].args[1])

    parts = {
        "kinds of `config.json` edits": len(rundir.EDITS),
        "non-object configs": cases(rundir.test_config_that_is_no_object),
        "kinds of checkpoint that does not fit": len(rundir.BAD_CHECKPOINTS),
        "unwritable `--out` paths": len(rundir.UNWRITABLE),
        "bad options": len(rundir.BAD_OPTIONS),
    }
    for words, n in parts.items():
        assert f"{n} {words}" in row, words
    spec_edit, nan_inf = 1, cases(rundir.test_nan_or_inf_weights_are_refused_naming_the_file)
    assert f"| {sum(parts.values()) + spec_edit + nan_inf} |" in row


def _route_row(route: str) -> str:
    text = (ROOT / "README.md").read_text()
    return next(r for r in text.splitlines() if r.startswith(f"| `{route}"))


def test_readme_route_table_names_every_key_the_explorer_returns(client):
    """The README's `/api/model` and `/api/predict` rows name each key of the answers
    (`cam_layer` and `upload` were returned and named nowhere)."""
    model = _route_row("GET /api/model")
    for key in client.get("/api/model").json():
        if key not in ("name", "classes", "architecture", "input_shape", "kinds"):  # in words
            assert f"`{key}`" in model, key
    predict = _route_row("POST /api/predict")
    for key in client.post("/api/predict", data={"sample": "0"}).json():
        assert f"`{key}`" in predict, key
