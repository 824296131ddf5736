"""A run of few optimizer steps says so, naming --batch-size and --epochs (300 images at the
default batch 128 gave 2 steps an epoch, and the only advice was another --lr); and the
guessing note says a test accuracy is not told apart from chance, with the bound a guesser
reaches on that many images, where it said "no better than". Truth: the steps the loop took
(counted at its step function), and scipy's binomial quantile."""

from __future__ import annotations

import pytest
import torch
from scipy import stats
from torch import nn

from cnnlab.data import ImageSet, load_dataset
from cnnlab.train import TrainConfig, train
from cnnlab.train import loop as loop_module
from cnnlab.train.measure import FEW_STEPS, GUESS_TAIL, guess_bound, guess_note, guesses

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def few_digits(n: int = 300) -> ImageSet:
    digits = load_dataset("digits", "train")
    return ImageSet(digits.images[:n], digits.labels[:n], digits.classes, "few digits")


def linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


@pytest.mark.parametrize("batch_size", [128, 32])
def test_a_run_of_few_steps_says_how_many_and_how_to_take_more(batch_size, monkeypatch):
    taken, step = [], loop_module._step
    monkeypatch.setattr(loop_module, "_step", lambda *a: taken.append(1) or step(*a))
    config = TrainConfig(epochs=8, batch_size=batch_size, tta=False, precision="fp32")
    result = train(linear(), few_digits(), None, config)
    said = [n for n in result["notes"] if "optimizer step" in n]
    if len(taken) >= FEW_STEPS:  # 270 training images in batches of 32: 8 an epoch, 64
        assert batch_size == 32 and said == []
        return
    (note,) = said
    assert f"only {len(taken)} optimizer steps ({len(taken) // 8} an epoch" in note
    assert "--batch-size 32 gives 64, more --epochs more" in note  # the other run's 64


@pytest.mark.parametrize(("share", "n"), [(1 / 3, 60), (0.1, 360), (0.5, 20), (0.9, 600)])
def test_the_guessing_bound_is_the_binomial_quantile(share, n):
    assert guess_bound(share, n) == pytest.approx(stats.binom.ppf(1 - GUESS_TAIL, n, share) / n)


def test_the_guessing_note_says_chance_on_that_many_images_and_few_steps_first():
    images = torch.zeros(60, 1, 8, 8, dtype=torch.uint8)
    test = ImageSet(images, torch.arange(60) % 3, ("a", "b", "c"), "test")
    bound = stats.binom.ppf(1 - GUESS_TAIL, 60, 1 / 3) / 60  # 33 of 60 images: 55 %
    assert guesses(0.45, test) and not guesses(bound + 1 / 60, test)
    (note,) = guess_note(0.45, test, TrainConfig())
    assert "45.00% is not told apart from always guessing the most frequent class" in note
    assert f"(33.33% of the test images), which scores up to {bound:.2%} on 60 images" in note
    assert "no better than" not in note and "Try another --lr" in note
    few = ["this run took only 16 optimizer steps (2 an epoch: ...)"]
    (note,) = guess_note(0.45, test, TrainConfig(), few)
    assert "It took few steps (see the note on them): try more, or another --lr" in note


def test_a_resume_leaves_the_step_count_to_the_run_that_chose_it(tmp_path):
    config = TrainConfig(epochs=1, batch_size=128, tta=False, precision="fp32")
    first = train(linear(), few_digits(), tmp_path / "run", config)
    assert any("optimizer steps" in note for note in first["notes"])
    again = train(linear(), few_digits(), tmp_path / "run", config, resume=True)
    assert not any("optimizer steps" in note for note in again["notes"])
