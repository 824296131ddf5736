"""hierarchy: the rule reads the trained net's rise (block 1 -> block 3) and its block 3
against the random net's block 3; it does not compare the trained net's rise with the random
net's. A 'holds' said 'depth and training both add', which reads as training having built
the rise; the sentence says what the two checks found and gives the random net's block 1 and
block 3 beside them (the full lab's random net fell 84.8 -> 81.6 %). Made-up measurements, as
tests/test_lab_rules.py's; the truth for the means is numpy's."""

from __future__ import annotations

import numpy as np

from cnnlab.lab import ex_hierarchy
from test_lab_rules import hierarchy


def test_holds_says_what_the_checks_found_not_that_training_built_the_rise():
    m = hierarchy((80.0, 88.0, 80.0), (81.0, 87.0, 79.0))
    v = ex_hierarchy.judge(m)
    assert v.outcome == "holds", v.meaning
    assert "both add" not in v.meaning and "built" not in v.meaning, v.meaning
    assert v.meaning.endswith(
        "the trained net's probe rose with depth, and its block 3 read the class better than "
        "random weights'."
    ), v.meaning


def test_the_sentence_gives_the_random_nets_block_1_and_block_3():
    """The random net falling with depth (84 -> 81) while the trained net rises is shown."""
    m = hierarchy((80.0, 88.0, 81.0), (81.0, 87.0, 80.0))
    for row in m["seeds"]:
        row["random"]["block 1"] = 84.0 + row["seed"]
    v = ex_hierarchy.judge(m)
    r1 = np.array([84.0, 85.0])
    r3 = np.array([81.0, 80.0])
    assert (
        f"random-weight block 1 {r1.mean():.1f} ± {r1.std(ddof=1):.1f} % -> block 3 "
        f"{r3.mean():.1f} ± {r3.std(ddof=1):.1f} %"
    ) in v.meaning, v.meaning
    assert "the random net's change shown, not judged" in v.meaning, v.meaning
