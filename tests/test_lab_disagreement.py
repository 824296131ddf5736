"""An undecided or partial verdict names its checks by how many seeds passed each: a check that
failed on every seed is part of the answer ("deeper probed better" failed on all 3 of the full
lab's seeds while "the seeds disagree" was all the hierarchy sentence said). Made-up
measurements, built as tests/test_lab_rules.py's."""

from __future__ import annotations

from cnnlab.lab import (
    ex_floor,
    ex_hierarchy,
    ex_parameters,
    ex_sharing,
    ex_spatial,
    ex_stacking,
    ex_vanishing,
)
from cnnlab.lab.experiment import disagreement, each_seed
from test_lab_rules import floor, hierarchy, parameters, sharing, spatial, stacking, vanishing


def test_disagreement_sorts_checks_into_split_held_and_failed():
    said = disagreement({"a": [True, False, True], "b": [True] * 3, "c": [False] * 3})
    assert (
        said == "the seeds split on 'a' (2 of 3); 'b' held on every seed; 'c' failed on every seed"
    )


def test_hierarchy_says_the_rise_failed_on_every_seed():
    """The full lab's pattern: block 3 about 2.5 points above block 1 on each seed (under 3),
    above random weights by 5 on two seeds of three."""
    v = ex_hierarchy.judge(hierarchy((84.6, 87.1, 81.0), (84.0, 86.5, 82.5), (85.0, 87.5, 81.5)))
    assert v.outcome == "inconclusive"
    assert "'deeper probed better' failed on every seed" in v.meaning, v.meaning
    assert "'training beat random weights' (2 of 3)" in v.meaning, v.meaning


def test_stacking_names_the_check_the_seeds_split_on():
    v = ex_stacking.judge(stacking((81.0, 2.5, 79.0, 3.0), (82.0, 2.3, 80.0, 3.0)))
    assert v.outcome == "inconclusive"
    assert "split on 'gradient spread' (1 of 2); 'accuracy' held on every seed" in v.meaning


def test_parameters_partly_says_which_comparison_held():
    v = ex_parameters.judge(parameters((86.0, 83.0, 89.0), (86.0, 82.0, 89.0)))
    assert v.outcome == "partly"
    assert "'beat the same-budget MLP' held on every seed" in v.meaning, v.meaning
    assert "'matched the larger MLP' failed on every seed" in v.meaning, v.meaning


def test_vanishing_names_the_split_check():
    v = ex_vanishing.judge(vanishing((1e-8, 0.5, 10.0, 60.0), (0.1, 0.5, 50.0, 60.0)))
    assert v.outcome == "inconclusive"
    assert "split on 'sigmoid's vanished' (1 of 2)" in v.meaning, v.meaning


def test_sharing_says_how_many_seeds_had_a_smaller_gap_not_either_or():
    """The quick lab's pattern: the conv net's gap 0.1 points smaller on its one seed, its
    accuracy lower; "smaller, but not by 2 points on every seed, or the seeds disagree" left
    the reader to guess which. (The quick lab's conv net also fitted its training images less,
    76.3 against 76.2 here so that neither half holds.)"""
    v = ex_sharing.judge(sharing((76.3, 73.7, 76.2, 73.5)))
    assert v.outcome == "inconclusive"
    assert "or the seeds disagree" not in v.meaning, v.meaning
    assert "the conv net's gap was smaller on 1 of 1 seed" in v.meaning, v.meaning
    assert "'gap 2 points smaller' and 'training fit lower' failed" in v.meaning


def test_one_seed_is_not_each_of_1_seed():
    assert each_seed(1) == "1 of 1 seed" and each_seed(3) == "each of 3 seeds"
    v = ex_floor.judge(floor((108, 0, 0)))
    assert "each of 1 seed" not in v.meaning and "(over 1 seed)" in v.meaning, v.meaning


def test_pooling_and_translation_name_the_split_check():
    from cnnlab.lab import ex_pooling, ex_translation
    from test_lab_pooling import pooling
    from test_lab_rules import translation

    v = ex_pooling.judge(pooling((85.0, 70.0, 0.2, 0.3), (80.0, 80.0, 0.3, 0.3)))
    assert v.outcome == "inconclusive"
    assert "split on 'max resists shifts' (1 of 2) and 'average is low-pass' (1 of 2)" in (
        v.meaning
    ), v.meaning
    v = ex_translation.judge(translation((2.0, 15.0, 30.0), (22.0, 21.0, 24.0)))
    assert v.outcome == "inconclusive"
    assert "split on 'GAP CNN robust' (1 of 2) and 'GAP CNN invariant' (1 of 2)" in v.meaning


def test_spatial_names_the_check_the_seeds_split_on():
    """Seed 0: MLP unchanged, CNN 9.5 points further; seed 1: both fell 6."""
    v = ex_spatial.judge(spatial((0.5, 10.0), (6.0, 6.0)))
    assert v.outcome == "inconclusive"
    assert "the seeds split on 'MLP unchanged' (1 of 2) and 'CNN fell further' (1 of 2)" in (
        v.meaning
    ), v.meaning
    assert "disagree" not in v.meaning, v.meaning


def test_floor_says_the_fix_held_where_the_drop_split():
    """Seed 1 left 8 band pixels with gradient; P=2 left none on either seed."""
    v = ex_floor.judge(floor((108, 0, 0), (100, 0, 0)))
    assert v.outcome == "inconclusive"
    assert "split on 'P=0 dropped the edge' (1 of 2); 'P=2 fixed it' held on every seed" in (
        v.meaning
    ), v.meaning
    assert "disagree" not in v.meaning, v.meaning


def test_floor_does_not_say_the_drop_failed_when_only_pixels_outside_it_lost_gradient():
    """Every band pixel had no gradient on both seeds, and 5 and 3 pixels outside it had none
    either: the band was dropped; what failed is that it alone had no gradient."""
    v = ex_floor.judge(floor((108, 5, 0), (108, 3, 0)))
    assert v.outcome == "inconclusive"
    assert "'P=0 dropped the edge' failed" not in v.meaning, v.meaning
    assert "'P=0 dropped the edge' and 'P=2 fixed it' held on every seed" in v.meaning, v.meaning
    assert "'no pixel outside the edge had zero gradient' failed on every seed" in v.meaning
