"""The explanations experiment's rank correlation against scipy.stats.spearmanr (the truth),
on maps with ties as Grad-CAM makes them (a ReLU's zeros; a random net's map all zero)."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from cnnlab.lab.ex_explanations import spearman


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
