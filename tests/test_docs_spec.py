"""docs/spec.md against the kind records: its generated sections equal what the records say
now, and every spec it shows loads and builds with the shapes it claims.

After changing a kind or a preset, rewrite the generated sections with
``.venv/bin/python tests/test_docs_spec.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cnnlab.design.build import build
from cnnlab.design.kinds import KINDS, REQUIRED, Kind
from cnnlab.design.spec import load_spec, preset_names

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


if __name__ == "__main__":
    rewrite()
    sys.exit(0)
