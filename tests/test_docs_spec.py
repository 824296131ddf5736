"""docs/spec.md against the kind records: its generated sections equal what the records say
now, and every spec it shows loads and builds with the shapes it claims.

After changing a kind or a preset, rewrite the generated sections with
``.venv/bin/python tests/test_docs_spec.py``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cnnlab.design.build import build
from cnnlab.design.kinds import KINDS, REQUIRED, Kind
from cnnlab.design.spec import load_spec, preset_names
from cnnlab.errors import SpecError

DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"
SECTIONS = ("kinds", "presets")


def _value(value) -> str:
    if value is REQUIRED:
        return "required"
    if value is None:
        return "= kernel"  # a pool's stride
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def sentence(doc: str) -> str:
    """A kind's doc as a sentence: a leading word capitalised, a leading formula kept as it
    is written ('y = body(x)', 'max(0, x)', 'tanh(x)', 'x for x > 0' are math, not words)."""
    word = re.match(r"[a-z]{2,}(?=[ ,:])", doc)
    return (doc[0].upper() + doc[1:] if word else doc) + "."


def render_kind(kind: Kind) -> str:
    lines = [f"### `{kind.name}`", "", sentence(kind.doc)]
    if kind.short is not None:
        lines += ["", f"Short form: `{kind.name}: value` sets `{kind.short}`."]
    if kind.args:
        lines += ["", "| argument | default | meaning |", "|---|---|---|"]
        lines += [
            f"| `{name}` | {_value(arg.default)} | {arg.doc} |" for name, arg in kind.args.items()
        ]
    else:
        lines += ["", "No arguments: write just the name."]
    return "\n".join([*lines, "", "```yaml", f"- {kind.example}", "```"])


def render_kinds() -> str:
    index = ", ".join(f"[`{name}`](#{name})" for name in KINDS)
    return "\n\n".join([f"Kinds: {index}.", *(render_kind(k) for k in KINDS.values())])


def render_presets() -> str:
    rows = ["| preset | input | layers | parameters | what it is |", "|---|---|---|---|---|"]
    for name in preset_names():
        spec = load_spec(name)
        params = sum(p.numel() for p in build(spec).parameters())
        c, h, w = spec.input
        rows.append(
            f"| `{name}` | {c}×{h}×{w} | {len(spec.layers)} | {params:,} | {spec.description} |"
        )
    return "\n".join(rows)


RENDER = {"kinds": render_kinds, "presets": render_presets}


def _span(text: str, section: str) -> re.Match:
    pattern = rf"(<!-- {section}: generated.*?-->\n)(.*?)(\n<!-- end {section} -->)"
    match = re.search(pattern, text, flags=re.S)
    assert match, f"docs/spec.md has no generated {section} section"
    return match


def rewrite() -> None:
    text = DOC.read_text()
    for section in SECTIONS:
        match = _span(text, section)
        text = text[: match.start(2)] + RENDER[section]() + text[match.end(2) :]
    DOC.write_text(text)


@pytest.mark.parametrize("section", SECTIONS)
def test_generated_sections_match_the_records(section):
    """The doc cannot drift: a kind, argument, default or preset changed means this fails."""
    assert _span(DOC.read_text(), section).group(2) == RENDER[section](), (
        "docs/spec.md is out of date: run .venv/bin/python tests/test_docs_spec.py"
    )


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)


def test_every_kind_example_builds_and_runs():
    """Each kind's example, after what it needs (maps for a pool, flat features for linear)."""
    for kind in KINDS.values():
        layers = ["flatten"] if kind.name == "linear" else []
        spec = load_spec({"input": [3, 8, 8], "layers": [*layers, yaml.safe_load(kind.example)]})
        out = build(spec).eval()(torch.randn(2, 3, 8, 8))
        assert tuple(out.shape[1:]) == spec.shapes[-1], kind.name


def test_every_full_spec_in_the_doc_loads_and_builds():
    """The doc's complete specs (blocks with `input:`) load, build and run at their input."""
    full = [block for block in _yaml_blocks() if "input:" in block]
    assert len(full) >= 2
    for block in full:
        spec = load_spec(block)
        out = build(spec).eval()(torch.randn(2, *spec.input))
        assert tuple(out.shape[1:]) == spec.shapes[-1]


def test_the_doc_states_the_limits_the_code_enforces():
    from cnnlab.design import spec

    text = DOC.read_text()
    for name in ("MAX_LAYERS", "MAX_DEPTH", "MAX_TEXT", "MAX_VALUES"):
        assert f"{getattr(spec, name):,}" in text, name


def test_a_formula_that_opens_a_kind_keeps_its_case():
    """'Y = body(x) + shortcut(x)', 'Tanh(x)', 'Max(0, x)' and 'X for x > 0' were printed: the
    first letter of every kind's doc was capitalised, formulas included."""
    text = DOC.read_text()
    for formula in ("y = body(x) + shortcut(x)", "max(0, x)", "tanh(x), in", "x for x > 0"):
        assert f"\n{formula}" in text, formula
    for kind in ("maxpool", "linear", "dropout"):  # words still open a sentence with a capital
        assert f"\n{sentence(KINDS[kind].doc)}" in text and sentence(KINDS[kind].doc)[0].isupper()


# --- the page's snippet, comments and sentences against what the code does ------------------


def _opening_spec() -> str:
    return _yaml_blocks()[0]


def test_the_python_snippet_does_what_its_comments_say(tmp_path, monkeypatch, capsys):
    """The opening snippet, run as it stands on the opening spec saved as my-net.yaml: build
    gives an nn.Sequential whose child str(i) is layer i and whose .spec is the Spec, shapes
    holds one shape per layer, and the printed YAML loads back to the same Spec."""
    snippet = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    for said in ("a path, YAML text, a dict or a preset name", "nn.Sequential; model.spec is "
                 "the Spec", "(C, H, W) or (F,) after each layer", "load_spec(spec.to_yaml()) "
                 "== spec"):  # fmt: skip
        assert said in snippet, said
    (tmp_path / "my-net.yaml").write_text(_opening_spec())
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(snippet, "spec.md", "exec"), scope)
    spec, model = scope["spec"], scope["model"]
    assert type(model) is torch.nn.Sequential and model.spec is spec
    assert [name for name, _ in model.named_children()] == [str(i) for i in range(len(spec.layers))]
    assert len(spec.shapes) == len(spec.layers) and spec.shapes[-1] == (10,)
    assert spec.shapes[7] == (128, 6, 6) and spec.shapes[8] == (128,)  # maps, then features
    assert load_spec(capsys.readouterr().out) == spec
    text = _opening_spec()
    for source in (text, yaml.safe_load(text), "fast"):  # the comment's other sources
        assert load_spec(source).layers


def test_the_opening_specs_comments_are_what_build_makes():
    """`# stride 1, bias true by default` and `# kernel 2, stride = kernel`: torch's modules."""
    text = _opening_spec()
    assert "# stride 1, bias true by default" in text and "# kernel 2, stride = kernel" in text
    model = build(load_spec(text))
    conv, pool = model[0], model[3]
    assert conv.stride == (1, 1) and conv.bias is not None
    assert isinstance(pool, torch.nn.MaxPool2d) and pool.kernel_size == pool.stride == 2


SHAPE_COMMENT = re.compile(r"^  - .*#\s*(\d+(?:×\d+×\d+| features))", re.M)


def test_the_shapes_the_examples_comments_give_are_the_specs():
    """A top-level layer's comment `# 32×14×14` or `# 32 features` is spec.shapes of it."""
    checked = 0
    for block in (b for b in _yaml_blocks() if "input:" in b):
        spec = load_spec(block)
        lines = block[block.index("layers:") :].splitlines()
        tops = [line for line in lines if line.startswith("  - ")]
        for i, line in enumerate(tops):
            said = SHAPE_COMMENT.match(line)
            if said:
                shape = spec.shapes[i]
                written = "×".join(map(str, shape)) if len(shape) == 3 else f"{shape[0]} features"
                assert said.group(1) == written, f"{line.strip()}: the spec gives {written}"
                checked += 1
    assert checked >= 4, checked


def test_the_residual_examples_shortcuts_are_the_ones_the_comments_name():
    (block,) = [b for b in _yaml_blocks() if "name: two-blocks" in b]
    assert "# 16×28×28: identity shortcut" in block
    assert "# 32×14×14: 1×1 conv, stride 2, then batch norm" in block
    model = build(load_spec(block))
    x = torch.randn(1, 16, 28, 28)
    assert model[2].shortcut is None or torch.equal(model[2].shortcut(x), x)
    conv, norm = model[4].shortcut
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    assert isinstance(norm, torch.nn.BatchNorm2d)


def test_the_load_time_error_reads_as_the_page_shows_it(tmp_path, monkeypatch):
    """The page's example message, for a file whose line 9 is layer 4, a 7×7 conv on 5×5 maps:
    file, line, layer index, kind and rule, as shown up to its `...`."""
    shown = re.search(r"```text\n(my-net\.yaml, line 9: .*?); \.\.\.\n```", DOC.read_text())
    assert shown, "docs/spec.md no longer shows the load-time error"
    (tmp_path / "my-net.yaml").write_text(
        "name: my-net\ndescription: the page's error\ninput: [1, 20, 20]\nlayers:\n"
        "  - conv: {filters: 8, kernel: 3}\n  - relu\n  - maxpool: 3\n"
        "  - conv: {filters: 8, kernel: 2}\n  - conv: {filters: 8, kernel: 7}\n"
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_spec("my-net.yaml")
    assert str(caught.value).startswith(shown.group(1) + "; ")


def _layer(text: str) -> str:
    return f"input: [1, 28, 28]\nlayers:\n  - {text}\n  - gap\n  - linear: 2\n"


# (what the page says, a spec's layer, what load_spec does: a word of its error or a check)
SENTENCES = [
    ("`1e-3` is a number", "dropout: 1e-3", lambda s: s.layers[0].args["p"] == 0.001),
    ("(`stride: 010` is 8 to YAML 1.1, 10 to a reader: write `10`)",
     "conv: {filters: 2, stride: 010}", "write 10"),
    ("`00` to `07`\nread as written", "conv: {filters: 2, stride: 07}",
     lambda s: s.layers[0].args["stride"] in (7, (7, 7))),
    ("`08`, `09` are text its argument refuses (write `8`)",
     "conv: {filters: 2, stride: 08}", "write 8"),
    ("`1:30` and `2026-12-01` stay text", "conv: {filters: 2, stride: 1:30}", "got '1:30'"),
    ("`1:30` and `2026-12-01` stay text", "conv: {filters: 2, stride: 2026-12-01}",
     "got '2026-12-01'"),
    ("(`bias: no`: write false)", "conv: {filters: 2, bias: no}", "write false"),
    ("There is no `softmax` layer", "softmax", "has no softmax layer"),
    ("(10×10 to 6×6;", None, "no strided 1×1 projection turns 10×10 into 6×6"),
    ("8×8 to 3×3 is stride 3, and allowed", None, lambda s: s.shapes[0] == (4, 3, 3)),
]  # fmt: skip
RESIDUAL = {  # the two residual sentences, as specs
    "(10×10 to 6×6;": "input: [1, 10, 10]\nlayers:\n  - residual: [conv: {filters: 4, kernel: 5}]",
    "8×8 to 3×3 is stride 3, and allowed": (
        "input: [1, 8, 8]\nlayers:\n  - residual: [conv: {filters: 4, stride: 3, padding: 1}]"
    ),
}


@pytest.mark.parametrize(("said", "layer", "does"), SENTENCES, ids=[s[0] for s in SENTENCES])
def test_each_sentence_on_reading_a_layer_is_what_load_spec_does(said, layer, does):
    assert said in DOC.read_text(), f"docs/spec.md no longer says {said!r}"
    text = RESIDUAL[said] if layer is None else _layer(layer)
    if isinstance(does, str):
        with pytest.raises(SpecError, match=re.escape(does)):
            load_spec(text)
    else:
        assert does(load_spec(text))


def test_the_keys_table_is_what_load_spec_reads(tmp_path):
    """A spec's name defaults to its file's name without the extension (`spec` for text or a
    dict); another key is an error, with a "did you mean" for a typo."""
    text = " ".join(DOC.read_text().split())
    name = "default: the file's name without its extension, `.yaml` or `.json` (`spec` for text"
    for said in (name, 'Any other key is an error (with a "did you mean"'):
        assert said in text, said
    body = "input: [1, 8, 8]\nlayers: [relu]\n"
    (tmp_path / "net.yaml").write_text(body)
    (tmp_path / "net.json").write_text(json.dumps(yaml.safe_load(body)))
    assert load_spec(tmp_path / "net.yaml").name == load_spec(tmp_path / "net.json").name == "net"
    assert load_spec(body).name == load_spec(yaml.safe_load(body)).name == "spec"
    with pytest.raises(SpecError, match="unknown spec key 'layer' \\(did you mean layers\\?\\)"):
        load_spec("input: [1, 8, 8]\nlayer: [relu]\n")


def test_a_named_pipe_is_refused_not_read(tmp_path):
    assert "(a named pipe is refused, not read)" in DOC.read_text()
    pipe = tmp_path / "net.yaml"
    os.mkfifo(pipe)
    with pytest.raises(SpecError, match="not a regular file"):
        load_spec(pipe)  # a read would block: no writer ever opens the pipe


if __name__ == "__main__":
    rewrite()
    sys.exit(0)
