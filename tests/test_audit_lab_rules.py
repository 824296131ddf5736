"""Lab rules read against the claims they test: the notes' words set the direction of a
comparison, and every activation the claim names is reported. Made-up measurements."""

from __future__ import annotations

from cnnlab.lab import ex_nonlinearity, ex_vanishing


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
    """"It can do no more than one linear layer" bounds the deep linear net from above: being
    3 points below logistic regression (harder to optimise) is no evidence against it, being
    3 points above would be."""
    below = ex_nonlinearity.judge(nonlinearity((77.0, 80.0, 85.0), (77.5, 80.5, 86.0)))
    assert below.outcome == "holds", below.meaning
    above = ex_nonlinearity.judge(nonlinearity((83.0, 80.0, 88.0), (83.5, 80.5, 89.0)))
    assert above.outcome == "partly" and "above logistic regression" in above.meaning


def test_a_failed_relu_control_is_named_in_the_sentence():
    v = ex_nonlinearity.judge(nonlinearity((75.4, 77.5, 73.7)))
    assert v.outcome == "partly" and "ReLU" in v.meaning.split("seeds)")[-1], v.meaning
