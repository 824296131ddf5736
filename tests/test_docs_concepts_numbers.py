"""The concept map gives the notes' own numbers where the notes work them out: its doctest
block computes each (150,529,000; the dot product's 4; 27C² against 49C²; the output-size
formula and its floor; 25,088 × 4,096; cat against stack), and the command its parameter row
names prints the notes' 150,529,000 (it named `summary SPEC --compare-mlp 1000`, which at a
spec's own 1×28×28 input says 785,000)."""

from __future__ import annotations

import doctest
import re
import shlex
from pathlib import Path

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
