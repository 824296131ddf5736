"""Verdict sentences say what the rule read: heads' seeds that disagree on overfitting are not
"GAP did overfit more"; stacking's stack that lost both accuracy and effective field on every
seed is not said to have lost one of them (the effective field is judged as the gradient
spread). Made-up measurements, as tests/test_lab_rules.py's."""

from __future__ import annotations

from cnnlab.lab import ex_heads, ex_stacking
from test_lab_rules import heads, stacking


def test_heads_seeds_that_disagree_on_overfitting_are_said_to_disagree():
    verdict = ex_heads.judge(heads((2.0, 5.0, 3.0), (9.0, 4.0, 3.0)))  # any size; +3 and -5
    assert verdict.outcome == "partly"
    assert "did overfit more" not in verdict.meaning and "disagree" in verdict.meaning


def test_heads_overfitting_more_on_every_seed_is_said():
    verdict = ex_heads.judge(heads((9.0, 4.0, 3.0), (9.0, 4.0, 3.0)))
    assert verdict.outcome == "partly" and "did overfit more" in verdict.meaning


def test_stacking_that_lost_both_says_both():
    verdict = ex_stacking.judge(stacking((70.0, 3, 80.0, 7), (71.0, 3, 80.0, 7)))
    assert verdict.outcome == "partly"
    assert verdict.meaning.endswith("the stack lost accuracy and gradient spread.")


def test_stacking_that_lost_one_says_that_one():
    verdict = ex_stacking.judge(stacking((80.0, 3, 79.0, 7), (81.0, 3, 80.0, 7)))
    assert verdict.meaning.endswith("the stack lost gradient spread.")


def test_translation_holds_only_where_the_shift_hurts_the_mlp():
    """Both CNNs within 5 points at 3 px is invariance only if the MLP, without sharing, lost
    more: a shift that costs the MLP nothing too says nothing of weight sharing."""
    from cnnlab.lab import ex_translation
    from test_lab_rules import translation

    easy = ex_translation.judge(translation((2.0, 4.0, 3.0), (3.0, 5.0, 2.0)))
    assert easy.outcome == "inconclusive" and "does not tell" in easy.meaning
    hard = ex_translation.judge(translation((2.0, 4.0, 30.0), (3.0, 5.0, 25.0)))
    assert hard.outcome == "holds"
