"""Verdict sentences say what the rule read, and lab rules are read against the claims they test:
the notes' words set the direction of a comparison (a deep linear net below logistic regression
is what the claim says), every activation the claim names is reported (tanh beside sigmoid), a
rule that fails says which comparison failed; heads' seeds that disagree on overfitting are not
"GAP did overfit more"; stacking's stack that lost both accuracy and effective field on every
seed is not said to have lost one of them (the effective field is judged as the gradient
spread); translation holds only where the shift hurts the MLP. Made-up measurements, the heads,
stacking and translation ones as tests/test_lab_rules.py's."""

from __future__ import annotations

from cnnlab.lab import (
    ex_heads,
    ex_hierarchy,
    ex_nonlinearity,
    ex_parameters,
    ex_stacking,
    ex_vanishing,
)
from test_lab_rules import heads, stacking


def nonlinearity(*rows):
    """(deep linear, logistic regression, deep ReLU) test accuracy per seed; one affine map."""
    linear, logistic, relu = ex_nonlinearity.MODELS
    return {
        "seeds": [
            {"seed": i, linear: a, logistic: b, relu: c, "max_diff_float64": 1e-13,
             "max_diff_float32": 1e-6}
            for i, (a, b, c) in enumerate(rows)
        ]
    }  # fmt: skip


def test_a_deep_linear_net_below_logistic_regression_is_what_the_claim_says():
    """The claim 'it can do no more than one linear layer' bounds the deep linear net from
    above: being 3 points below logistic regression (harder to optimise) is no evidence
    against it, being 3 points above would be."""
    below = ex_nonlinearity.judge(nonlinearity((77.0, 80.0, 85.0), (77.5, 80.5, 86.0)))
    assert below.outcome == "holds", below.meaning
    above = ex_nonlinearity.judge(nonlinearity((83.0, 80.0, 88.0), (83.5, 80.5, 89.0)))
    assert above.outcome == "partly" and "above logistic regression" in above.meaning


def test_a_failed_relu_control_is_named_in_the_sentence():
    v = ex_nonlinearity.judge(nonlinearity((75.4, 77.5, 73.7)))
    assert v.outcome == "partly" and "ReLU" in v.meaning.split("seeds)")[-1], v.meaning


def vanishing(tanh_ratio: float, seeds: int = 2):
    """Sigmoid vanished (1e-8), ReLU flowed (0.5) and learned 50 points more, on every seed;
    tanh's first/last ratio is `tanh_ratio` at 80 % test accuracy."""
    rows = []
    for i in range(seeds):
        row = {"seed": i}
        for act in ex_vanishing.ACTIVATIONS:
            row[act] = {"ratio": 0.5, "test": 60.0, "norms": [1.0], "loss": [2.0]}
        row["sigmoid"].update(ratio=1e-8, test=10.0)
        row["tanh"].update(ratio=tanh_ratio, test=80.0)
        rows.append(row)
    return {"seeds": rows, "depth": ex_vanishing.DEPTH}


def test_the_vanishing_sentence_reports_tanh_which_the_notes_name_with_sigmoid():
    """The notes deprecate sigmoid *and tanh* for vanishing gradients; the rule judges
    sigmoid, and the sentence must not let a 'holds' speak for a tanh that kept its gradient
    (Glorot-initialised, 12 layers: ratio 3.3 and the best accuracy of the four, full lab)."""
    kept = ex_vanishing.judge(vanishing(3.3))
    assert kept.outcome == "holds"
    assert "tanh's gradient grew at least 3.3×" in kept.meaning and "80.0" in kept.meaning
    assert "tanh's did not vanish" in kept.meaning, kept.meaning
    lost = ex_vanishing.judge(vanishing(1e-6))
    assert "tanh's did not vanish" not in lost.meaning and "1e-06" in lost.meaning


def test_a_hierarchy_that_fails_its_rule_is_not_called_absent():
    """The quick lab's probes rose from pixels (77.4 %) to block 1 (80.8) and block 2 (85.0)
    but block 3 (82.2) was not 3 points above block 1 nor 5 above random weights (79.0): the
    rule fails, and the sentence must say which comparison failed, not 'no hierarchy
    measured' beside a figure that shows one."""
    layers = ["pixels", "block 1", "block 2", "block 3", "GAP"]
    trained = dict(zip(layers, (77.4, 80.8, 85.0, 82.2, 77.4), strict=True))
    random = dict(zip(layers, (77.4, 79.8, 83.0, 79.0, 71.8), strict=True))
    m = {"seeds": [{"seed": 0, "trained": trained, "random": random}], "layers": layers}
    v = ex_hierarchy.judge(m)
    assert v.outcome == "does not hold"
    assert "no hierarchy" not in v.meaning
    end = v.meaning.rsplit("): ", 1)[-1]  # what the sentence concludes, after its numbers
    assert "block 1" in end and "random" in end, v.meaning


def test_a_parameter_rule_that_fails_on_accuracy_says_so_not_that_there_is_no_advantage():
    """The quick lab: the count held (150,529,000 against 1,792) but the undertrained CNN
    (74.8 %) beat neither MLP. The sentence ended 'no parameter advantage measured' right after
    confirming the 150 M count; it must say it was the accuracy comparisons that failed."""
    cnn, small, wide = ex_parameters.MODELS
    m = {
        "seeds": [{"seed": 0, cnn: 74.8, small: 76.8, wide: 80.7}],
        "params": {cnn: 24_058, small: 23_860, wide: 203_530},
        "arithmetic": ex_parameters.arithmetic(),
    }
    v = ex_parameters.judge(m)
    assert v.outcome == "does not hold"
    end = v.meaning.rsplit("PyTorch", 1)[-1]  # what the sentence concludes, after its numbers
    assert "no parameter advantage" not in end and "accuracy" in end, v.meaning


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


def test_heads_seeds_all_short_of_the_least_are_not_said_to_disagree():
    """Differences 1.5, 0.0, 1.9 points: none above 2, too uneven for the mean to rule 2 out
    (1.1 + 2 × 1.0/√3 > 2), size lost: inconclusive, because the seeds are unsettled, not
    because they disagree (none cleared the least)."""
    v = ex_heads.judge(heads((3.5, 5.0, 40.0), (5.0, 5.0, 30.0), (3.1, 5.0, 30.0)))
    assert v.outcome == "inconclusive"
    assert "disagree" not in v.meaning, v.meaning
    assert v.meaning.endswith("too unevenly to rule out that GAP overfit less."), v.meaning
    split = ex_heads.judge(heads((2.0, 5.0, 40.0), (9.0, 4.0, 30.0)))  # +3 and -5: they do
    assert split.outcome == "inconclusive" and "seeds disagree" in split.meaning, split.meaning


def test_translation_partly_does_not_say_gap_only_where_the_flatten_cnn_kept_it_too():
    """GAP lost 2 and 1 points, the flatten CNN 4 (invariant) and 12, the MLP 30 and 25:
    'partly', but invariance did not come with the GAP head only."""
    from cnnlab.lab import ex_translation
    from test_lab_rules import translation

    v = ex_translation.judge(translation((2.0, 4.0, 30.0), (1.0, 12.0, 25.0)))
    assert v.outcome == "partly" and "GAP head only" not in v.meaning, v.meaning
    assert v.meaning.endswith("the flatten CNN on 1 of 2 seeds."), v.meaning
    only = ex_translation.judge(translation((2.0, 15.0, 30.0), (1.0, 12.0, 25.0)))
    assert only.meaning.endswith("invariance came with the GAP head only."), only.meaning
