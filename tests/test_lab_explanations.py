"""The explanations experiment: its verdict rule on made-up measurements, as
tests/test_lab_rules.py's, and its rank correlation: a map with itself and with its reverse, and
against scipy.stats.spearmanr (the truth) on maps with ties as Grad-CAM makes them (a ReLU's
zeros; a random net's map all zero)."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from cnnlab.lab import ex_explanations
from cnnlab.lab.ex_explanations import spearman


def explanations(*rows):
    """Per seed: {method: (rank corr. when random, mean deletion accuracy)}; random order 60."""
    seeds = []
    for i, per_method in enumerate(rows):
        row = {"seed": i, "random order": [60.0] * len(ex_explanations.FRACTIONS)}
        for method in ex_explanations.METHODS:
            corr, score = per_method.get(method, (0.9, 60.0))
            row[method] = {"randomised": [0.9, corr],
                           "deletion": [score] * len(ex_explanations.FRACTIONS)}  # fmt: skip
        seeds.append(row)
    return {"seeds": seeds}


GOOD = (0.1, 40.0)


@pytest.mark.parametrize(
    ("rows", "outcome"),
    [
        ([dict.fromkeys(ex_explanations.METHODS, GOOD)] * 2, "holds"),
        ([{"saliency": GOOD}], "partly"),  # one method passes
        ([dict.fromkeys(ex_explanations.METHODS, (0.1, 60.0))], "partly"),  # all sensitive only
        ([{}], "does not hold"),
        ([{"saliency": (0.1, 60.0)}, {}], "inconclusive"),
    ],
)
def test_explanations_rule(rows, outcome):
    assert ex_explanations.judge(explanations(*rows)).outcome == outcome


def test_spearman_of_a_map_with_itself_and_its_reverse():
    import torch

    a = torch.rand(3, 6, 6)
    assert ex_explanations.spearman(a, a) == pytest.approx(1.0)
    assert ex_explanations.spearman(a, -a) == pytest.approx(-1.0)


def scipy_mean(a: torch.Tensor, b: torch.Tensor) -> float:
    pairs = zip(a, b, strict=True)
    found = [stats.spearmanr(x.flatten().numpy(), y.flatten().numpy())[0] for x, y in pairs]
    return sum(found) / len(found)


def test_spearman_with_ties_is_scipys():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 28, 28, generator=gen).relu()  # about half the pixels tied at 0
    b = torch.randn(4, 28, 28, generator=gen).relu()
    c = (a + 0.5 * torch.randn(4, 28, 28, generator=gen)).relu()
    assert spearman(a, b) == pytest.approx(scipy_mean(a, b), abs=1e-5)
    assert spearman(a, c) == pytest.approx(scipy_mean(a, c), abs=1e-5)
    rounded = (a * 2).round()  # many ties at several values
    assert spearman(rounded, c) == pytest.approx(scipy_mean(rounded, c), abs=1e-5)


def test_an_all_zero_map_does_not_correlate_with_a_centred_one():
    """Its pixels' order says nothing: 0, where ranks by position gave 0.77."""
    gen = torch.Generator().manual_seed(1)
    centred = torch.zeros(4, 28, 28)
    centred[:, 10:18, 10:18] = torch.rand(4, 8, 8, generator=gen)
    assert spearman(centred, torch.zeros(4, 28, 28)) == pytest.approx(0.0, abs=1e-6)


def test_the_undecided_band_said_is_the_one_the_rule_uses():
    """The meaning said 'within 2 standard errors, at most 2.0 points' when the largest
    standard error was 2.0: one error, not two; a deletion check 3 points from its line then
    read as undecided inside a band said to be 2 points wide."""
    found = explanations(*[dict.fromkeys(ex_explanations.METHODS, (0.1, 52.0))] * 2)
    for row in found["seeds"]:
        for method in ex_explanations.METHODS:
            row[method]["noise"] = 2.0  # 8 points below random order: 3 from the 5-point line
    verdict = ex_explanations.judge(found)
    assert "undecided" in verdict.meaning and verdict.outcome == "inconclusive"
    assert "at most 4.0 points, of that line" in verdict.meaning, verdict.meaning


def test_an_inconclusive_verdict_names_the_checks_and_their_seeds():
    """It said 'the seeds or checks disagree.' alone, naming neither which check the seeds
    split on nor which held or failed on every seed, as the other experiments' verdicts do
    (`experiment.disagreement`)."""
    sensitive, numb = (0.1, 60.0), (0.9, 60.0)  # saliency's maps changed on 2 of 3 seeds
    found = explanations({"saliency": sensitive}, {"saliency": sensitive}, {"saliency": numb})
    verdict = ex_explanations.judge(found)
    assert verdict.outcome == "inconclusive"
    assert "the seeds split on 'saliency changed with the weights' (2 of 3)" in verdict.meaning
    failed = "'saliency found pixels that mattered' and 'SmoothGrad changed with the weights'"
    assert failed in verdict.meaning and verdict.meaning.endswith("failed on every seed.")
    assert "disagree" not in verdict.meaning, verdict.meaning
