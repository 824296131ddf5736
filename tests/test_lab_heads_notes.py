"""The heads experiment against the notes' own example (§5.2): a 7×7×512 map flattened into
4,096 units is "≈ 102 million parameters", after GAP its input is 512. The lab's small nets
end on a 3×3 map, where GAP saves 15 % of the whole model, not the drastic cut the notes
describe: the sentence gives both, so "fewer" is not read as the notes' "drastically". Truth:
torch's own nn.Linear parameter counts. Made-up measurements, built as test_lab_rules.py's."""

from __future__ import annotations

from torch import nn

from cnnlab.lab import ex_heads
from test_lab_rules import heads


def torch_count(inputs: int, units: int) -> int:
    return sum(p.numel() for p in nn.Linear(inputs, units).parameters())


def test_the_sentence_gives_the_notes_example_as_torch_counts_it():
    flat, gap = torch_count(7 * 7 * 512, 4096), torch_count(512, 4096)
    assert abs(flat - 102e6) < 1e6  # the notes' "≈ 102 million"
    v = ex_heads.judge(heads((1.0, 5.0, 2.0)))
    said = f"a 7×7×512 map into 4,096 units takes {flat:,} parameters flattened against {gap:,}"
    assert said in v.meaning and "(formula and PyTorch agree)" in v.meaning, v.meaning
    assert "on a 3×3 final map, GAP had 14,458 parameters against 17,008 (15% fewer)" in v.meaning


def test_the_notes_arithmetic_is_part_of_the_structure(monkeypatch):
    """A formula that disagreed with PyTorch (or missed the notes' 102 M) fails the structure:
    'does not hold', whatever the measured nets did."""
    assert ex_heads.judge(heads((1.0, 5.0, 2.0))).outcome == "holds"
    monkeypatch.setattr(
        ex_heads, "arithmetic", lambda: {"flatten": (102_764_544, 102_760_448), "gap": (1, 1)}
    )
    v = ex_heads.judge(heads((1.0, 5.0, 2.0)))
    assert v.outcome == "does not hold" and "formula and PyTorch differ" in v.meaning
    assert "102 M parameters flattened" in ex_heads.EXPERIMENT.rule
