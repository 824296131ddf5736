"""README's training paragraph describes the probability note's sigmoid case by the range the
note checks: values between 0 and 1, ends included, as the note itself says. "In (0, 1)" left
out a bf16 sigmoid of 8, which rounds to exactly 1 and is noted. Truth: torch's bf16 sigmoid
and `probability_note` on it."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnlab.train.guard import probability_note

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def test_the_readme_gives_the_sigmoid_note_the_range_the_note_checks():
    z = torch.tensor([[8.0, -8.0, 0.5]] * 4, requires_grad=True)
    out = torch.sigmoid(z.bfloat16())
    assert float(out.max()) == 1.0  # exactly 1: not in (0, 1)
    note = probability_note(out)
    assert note and "between 0 and 1" in note[0], note
    paragraph = " ".join(README[README.index("gets a note from its first") :].split()[:80])
    assert "or values between 0 and 1" in paragraph, paragraph
    assert "values in (0, 1) made by a sigmoid" not in paragraph, paragraph
