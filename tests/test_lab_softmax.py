"""The softmax experiment: its verdict rule on made-up measurements, as tests/test_lab_rules.py's,
ECE by hand, the temperature fit on labels drawn at a known temperature, and the ECE floor: what
a perfectly calibrated model scores on as many test images. Truths for the floor: the normal
approximation of a bin's mean |accuracy − confidence|, sqrt(2/π)·sqrt(c(1 − c)/n), and labels
drawn from the probabilities themselves (calibrated by construction)."""

from __future__ import annotations

import math

import pytest
import torch

from cnnlab.lab import ex_softmax


def softmax_case(*rows, sum_error=1e-7):
    """(plain ECE, plain ECE after T) per seed."""
    seeds = []
    for i, (e, es) in enumerate(rows):
        row = {"seed": i}
        for name in ex_softmax.SMOOTHING:
            row[name] = {"ece": e, "ece_scaled": es, "temperature": 1.2, "in_range": True,
                         "sum_error": sum_error}  # fmt: skip
        seeds.append(row)
    return {"seeds": seeds}


@pytest.mark.parametrize(
    ("rows", "outcome"),
    [
        ([(0.01, 0.01), (0.02, 0.01)], "holds"),
        ([(0.08, 0.02), (0.07, 0.01)], "partly"),  # needs a temperature
        ([(0.08, 0.06)], "partly"),  # a distribution, not calibrated at all
        ([(0.01, 0.01), (0.08, 0.06)], "inconclusive"),
    ],
)
def test_softmax_rule(rows, outcome):
    assert ex_softmax.judge(softmax_case(*rows)).outcome == outcome


def test_softmax_rule_does_not_hold_when_outputs_do_not_sum_to_one():
    assert ex_softmax.judge(softmax_case((0.01, 0.01), sum_error=1e-3)).outcome == "does not hold"


def test_ece_by_hand():
    """Two bins: conf 0.95 (2 right of 2) and 0.55 (1 right of 2): ECE = ½·0.05 + ½·0.05."""
    import torch

    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    labels = torch.tensor([0, 0, 0, 1])
    assert ex_softmax.ece(probs, labels) == pytest.approx(0.05)
    assert ex_softmax.ece(torch.tensor([[1.0, 0.0]]), torch.tensor([0])) == pytest.approx(0.0)


def test_temperature_fit_recovers_a_known_temperature():
    """Labels drawn from softmax(z / 2): the NLL-optimal T on many samples is near 2."""
    import torch

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(20_000, 5, generator=gen) * 4
    labels = torch.multinomial((z / 2).softmax(1), 1, generator=gen).squeeze(1)
    assert ex_softmax.fit_temperature(z, labels) == pytest.approx(2.0, rel=0.08)


def confident_probs(n: int, seed: int) -> torch.Tensor:
    """(n, 10) softmax outputs whose top probabilities spread over 0.3-1, as a small net's."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 10, generator=gen) * 3).softmax(1)


def test_calibrated_ece_is_the_sampling_floor_by_the_normal_approximation():
    probs = confident_probs(1000, 0)
    mean, q95 = ex_softmax.calibrated_ece(probs, seed=0)
    confidence = probs.max(1).values
    index = (confidence * ex_softmax.BINS).long().clamp(max=ex_softmax.BINS - 1)
    expected = 0.0
    for b in range(ex_softmax.BINS):
        c = confidence[index == b]
        if len(c):
            p = float(c.mean())
            expected += len(c) / len(probs) * math.sqrt(2 / math.pi * p * (1 - p) / len(c))
    assert mean == pytest.approx(expected, rel=0.15)
    assert q95 > mean


def test_a_calibrated_model_on_1000_images_scores_about_the_threshold():
    """Labels drawn from the model's own probabilities: calibrated by construction, yet its ECE
    on 1,000 images is near CALIBRATED, and within the floor's 95th percentile."""
    probs = confident_probs(1000, 1)
    gen = torch.Generator().manual_seed(1)
    found = []
    for _ in range(40):
        labels = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        found.append(ex_softmax.ece(probs, labels))
    _, q95 = ex_softmax.calibrated_ece(probs, seed=1)
    assert sum(found) / len(found) > 0.6 * ex_softmax.CALIBRATED
    assert sum(e <= q95 for e in found) >= 34  # about 95 % of 40


def row(ece, scaled, floor):
    run = {"ece": ece, "ece_scaled": scaled, "temperature": 1.0, "in_range": True,
           "sum_error": 1e-7, "ece_calibrated": floor, "ece_scaled_calibrated": floor}  # fmt: skip
    return {name: dict(run) for name in ex_softmax.SMOOTHING}


def test_an_ece_a_calibrated_model_could_show_is_not_called_miscalibrated():
    """The quick lab's numbers: ECE 0.037, 0.040 after T, where a calibrated model with the same
    confidences scores 0.032 on average and up to 0.044 (95th percentile) on 1,000 images."""
    m = {"seeds": [{"seed": 0, **row(0.037, 0.040, [0.032, 0.044])}]}
    verdict = ex_softmax.judge(m)
    assert verdict.outcome == "inconclusive"
    assert "too few images" in verdict.meaning


def test_an_ece_above_the_floor_is_miscalibrated():
    m = {"seeds": [{"seed": s, **row(0.08, 0.06, [0.018, 0.025])} for s in range(3)]}
    assert ex_softmax.judge(m).outcome == "partly"


def test_results_measured_before_the_floor_show_no_floor_of_zero():
    """The stored full lab has no calibrated-model ECE: its table must not say 0.000."""
    m = {"seeds": [{"seed": 0, **row(0.016, 0.019, [0.0, 0.0])}]}
    for run in m["seeds"][0].values():
        if isinstance(run, dict):
            del run["ece_calibrated"], run["ece_scaled_calibrated"]
    verdict = ex_softmax.judge(m)
    assert verdict.outcome == "holds"
    assert not any("calibrated model" in k for k in verdict.numbers)


def scaled_row(ece, scaled, floor, scaled_floor):
    """row() with the floor of the ECE after T given apart."""
    out = row(ece, scaled, floor)
    for run in out.values():
        run["ece_scaled_calibrated"] = scaled_floor
    return out


def test_an_ece_beyond_the_floor_is_not_said_to_be_within_it():
    """Plain ECE 0.060 against a calibrated model's 95th percentile 0.040: beyond what sampling
    gives. After T 0.035, within it. Undecided (the temperature's effect is within the noise),
    but the sentence may not say the plain ECE is one a calibrated model shows."""
    m = {"seeds": [{"seed": 0, **scaled_row(0.060, 0.035, [0.03, 0.040], [0.03, 0.041])}]}
    verdict = ex_softmax.judge(m)
    assert verdict.outcome == "inconclusive"
    assert "on 1 of 1 seed within what" not in verdict.meaning, verdict.meaning
    assert "beyond that before the temperature and within it after (95th percentile 0.041)" in (
        verdict.meaning
    ), verdict.meaning
    assert verdict.meaning.endswith("miscalibrated after the temperature."), verdict.meaning
    # the plain ECE within the floor: the sentence as before
    m = {"seeds": [{"seed": 0, **row(0.037, 0.040, [0.032, 0.044])}]}
    said = ex_softmax.judge(m).meaning
    assert "on 1 of 1 seed within what a perfectly calibrated model" in said, said
    assert said.endswith("(95th percentile 0.044): too few images to call it miscalibrated.")


def test_a_seed_beyond_the_floor_before_and_after_is_counted_and_the_seeds_disagree():
    """ECE / after T 0.10 / 0.09 (beyond a calibrated model's 0.04 both times), 0.035 / 0.035
    (within it), 0.06 / 0.035 (within it only after T): the first seed is miscalibrated, so the
    sentence counts it and cannot blame too few images."""
    eces = [(0.10, 0.09), (0.035, 0.035), (0.06, 0.035)]
    m = {"seeds": [{"seed": s, **row(e, es, [0.03, 0.04])} for s, (e, es) in enumerate(eces)]}
    verdict = ex_softmax.judge(m)
    assert verdict.outcome == "inconclusive"
    said = verdict.meaning
    assert "on 1 of 3 seeds within what a perfectly calibrated model" in said, said
    assert "on 1 of 3 seeds beyond that before the temperature and within it after" in said, said
    assert "on 1 of 3 seeds beyond it before and after" in said, said
    assert said.endswith(": the seeds disagree."), said
    assert "too few images" not in said, said
