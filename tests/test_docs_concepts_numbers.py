"""The concept map gives the notes' own numbers where the notes work them out: its doctest
block computes each (150,529,000; the dot product's 4; 27C² against 49C²; the output-size
formula and its floor; 25,088 × 4,096; cat against stack), and the command its parameter row
names prints the notes' 150,529,000 (it named `summary SPEC --compare-mlp 1000`, which at a
spec's own 1×28×28 input says 785,000). The figures its command column quotes are what the
commands compute: 785,000 at 1×28×28, RF 3, the concatpool row, the sizes `fixed-size` names
(torch runs exactly those), a GAP head at 64×64, an empty output linted in code and refused in
a spec."""

from __future__ import annotations

import doctest
import re
import shlex
from pathlib import Path

import pytest
import torch

from cnnlab.cli import main

CONCEPTS = Path(__file__).parents[1] / "docs" / "concepts.md"


def _numbers_block() -> str:
    text = CONCEPTS.read_text(encoding="utf-8")
    section = text[text.index("## The notes' numbers, computed") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_notes_numbers_block_runs():
    block = _numbers_block()
    test = doctest.DocTestParser().get_doctest(block, {}, "concepts.md", str(CONCEPTS), 0)
    result = doctest.DocTestRunner().run(test)
    assert result.failed == 0 and result.attempted >= 15, result


def test_the_block_gives_each_of_the_notes_numbers():
    """The notes' results, as the doctest prints them (a test above checks they are printed)."""
    block = _numbers_block()
    for said in ("150529000", "1792", "\n4.0\n", "\n8\n", "\n2\n", "27 * C**2", "49 * C**2",
                 "'45% fewer'", "(7, 7)", "(1, 128, 14, 14)", "(2, 1, 64, 28, 28)",
                 "102764544"):  # fmt: skip
        assert said in block, said


def test_the_parameter_rows_command_prints_the_notes_count(capsys):
    row = next(r for r in CONCEPTS.read_text().splitlines() if r.startswith("| parameter eff"))
    command = re.search(r"`cnnlab (summary [^`]+)`", row).group(1)
    assert main(shlex.split(command)) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "to 1,000 units has 150,529,000 parameters" in out, out[-300:]
    assert "150,529,000 parameters (150,528,000 weights + 1,000 biases)" in row


def test_the_sparsity_row_reads_what_dead_units_measures():
    """§4.2's sparsity is in the map, and the number it points at is the share of a ReLU's
    outputs that are 0 (truth: torch's own ReLU output, counted)."""
    import torch
    from torch import nn

    from cnnlab.diagnose import dead_units

    row = next(r for r in CONCEPTS.read_text().splitlines() if "ReLU's sparsity" in r)
    assert "`cnnlab.diagnose.dead_units`" in row and "`cnnlab diagnose RUN`" in row
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3))
    x = torch.randn(8, 1, 10, 10)
    zeros = float((model[1](model[0](x)) == 0).float().mean())
    assert dead_units(model, x).layers[0].sparsity == zeros


def _row(starts: str) -> str:
    (row,) = [r for r in CONCEPTS.read_text().splitlines() if r.startswith(f"| {starts}")]
    return row


def test_the_parameter_row_gives_the_figure_at_a_specs_own_input_too(capsys):
    """'at the spec's own input, 1×28×28, the same line says 785,000' (784·1,000 + 1,000)."""
    row = _row("parameter efficiency")
    said = re.search(r"at the spec's own input, 1×28×28, the same line says ([\d,]+)", row)
    assert said and said.group(1) == f"{28 * 28 * 1000 + 1000:,}"
    assert main(["summary", "fast", "--compare-mlp", "1000"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"(784 values) to 1,000 units has {said.group(1)} parameters" in out


def test_the_rf_column_reads_3_after_the_first_3x3_conv():
    from cnnlab import summary

    assert "(RF column: 3 after the first 3×3 conv)" in _row("local receptive fields")
    first = summary("fast").rows[0]
    assert first.kind == "Conv2d" and first.receptive_field == 3


def test_the_concatpool_row_doubles_the_channels_as_the_map_says():
    """'a `concatpool` row doubles the channels: 64×28×28 → 128×14×14' in summary's table."""
    from cnnlab import summary

    said = re.search(r"doubles the channels: (\d+)×(\d+)×(\d+) → (\d+)×(\d+)×(\d+)",
                     _row("§3.3 `torch.cat`"))  # fmt: skip
    c, h, w, *out = map(int, said.groups())
    spec = {"input": [c, h, w], "layers": [{"concatpool": 2}, "gap", {"linear": 2}]}
    assert summary(spec).rows[0].output_shape == tuple(out)


def test_the_fixed_size_lint_names_the_sizes_that_run_and_gap_runs_at_any():
    """`summary SPEC --input 1,64,64`: a flatten head's lint names the sides that run (torch
    runs the model built for 64×64 at exactly those), and a GAP head has no such lint."""
    from cnnlab import build, load_spec, summary

    assert "(the `fixed-size` lint names the sizes that run)" in _row("§5.2 flatten")
    assert "runs a GAP head at any size" in _row("§5.2 global average pooling")
    (lint,) = [w for w in summary("fmnist-tf", (1, 64, 64)).warnings if w.code == "fixed-size"]
    low, high = map(int, re.search(r"\((\d+)–(\d+) px on each side", lint.message).groups())
    spec = load_spec("fmnist-tf")
    model = build(load_spec({"input": [1, 64, 64], "layers": spec.to_dict()["layers"]})).eval()
    for side in range(low - 2, high + 3):
        try:
            model(torch.zeros(1, 1, side, side))
            runs = True
        except RuntimeError:
            runs = False
        assert runs == (low <= side <= high), side
    assert not [w for w in summary("fast", (1, 64, 64)).warnings if w.code == "fixed-size"]
    assert summary("fast", (1, 64, 64)).rows[-1].output_shape == (10,)


def test_an_empty_output_is_a_lint_for_code_and_refused_in_a_spec():
    """§2.2's output size of 0: `summary --model` lints it (torch runs the layer); a spec
    with such a layer is refused when it loads."""
    from torch import nn

    from cnnlab import load_spec, summary
    from cnnlab.errors import SpecError

    assert "(a spec with such a layer is refused when it loads)" in _row("§2.2 an output size")
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d((0, 4)), nn.Flatten())
    assert model(torch.zeros(1, 1, 28, 28)).numel() == 0  # torch runs it
    assert "empty-output" in [w.code for w in summary(model, (1, 28, 28)).warnings]
    spec = {"input": [1, 28, 28], "layers": [{"adaptiveconcatpool": 0}, "flatten"]}
    with pytest.raises(SpecError, match="output_size must be an integer >= 1"):
        load_spec(spec)


STATIC = Path(__file__).parents[1] / "src" / "cnnlab" / "explorer" / "static"
# Each explorer part the concept map names -> (file of the page, text that part is made of).
EXPLORER = {
    "outlines a clicked unit's field on the input": ("view.js", "receptive field on the input"),
    "outlines it on the input": ("view.js", "receptive field on the input"),
    "dot-product panel, with stepping": ("index.html", 'id="step-right"'),
    "geometry playground": ("index.html", "Geometry playground"),
    "playground highlights them": ("geometry.js", "are never read (red)"),
    "playground": ("index.html", "Geometry playground"),
    "filter per input channel": ("index.html", 'input channel <select id="dot-channel">'),
    "feature maps": ("index.html", "Feature maps"),
    "top images per channel and their activation-maximization image": (
        "index.html", 'id="actmax-button"'),
    "overlays": ("index.html", 'id="toggle-gradcam"'),
    "softmax panel": ("index.html", "Softmax, step by step"),
}  # fmt: skip


def test_every_explorer_part_the_map_names_is_on_the_page():
    """`explorer softmax panel`, `explorer geometry playground`, ...: each is a part of the
    explorer's page; a part named anew needs its row here (so it is looked for too)."""
    named = set()
    for row in CONCEPTS.read_text().splitlines():
        if row.startswith("| ") and not row.startswith("| concept |"):
            last = row.rstrip(" |").split(" | ")[-1]
            named |= {p.strip() for p in re.findall(r"explorer ([^;|]+)", last)}
    assert len(named) >= 8 and named <= set(EXPLORER), named - set(EXPLORER)
    for part in named:
        file, text = EXPLORER[part]
        assert text in (STATIC / file).read_text(), f"explorer {part}: no {text!r} in {file}"
