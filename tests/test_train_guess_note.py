"""A run no better than always guessing the most frequent class is said so, with what to
try: its table alone (train and test accuracy near chance) read as a finished training."""

import math

import torch
from torch import nn

from cnnlab.cli import main
from cnnlab.data import ImageSet, load_dataset
from cnnlab.train import TrainConfig, train
from cnnlab.train.measure import guess_note


def constant_net() -> nn.Module:
    """Zero weights, a learning rate of nothing: every image gets the bias's class."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    nn.init.zeros_(net[1].weight)
    return net


def test_a_run_that_only_guesses_one_class_is_told_it_has_not_learned(tmp_path, capsys):
    code = tmp_path / "nets.py"
    code.write_text(
        "from torch import nn\n\n\ndef make():\n"
        "    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))\n"
        "    nn.init.zeros_(net[1].weight)\n    return net\n"
    )
    args = ["--data", "digits", "--epochs", "1", "--lr", "1e-12", "--batch-size", "32"]
    out = tmp_path / "run"
    assert main(["train", "--model", f"{code}:make", *args, "--quiet", "--out", str(out)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "is not told apart from always guessing the most frequent class" in said, said
    # 1437 digits at batch 32 (a tenth held out) are 40 steps: more steps come first
    assert "this run took only 40 optimizer steps" in said
    assert "It took few steps (see the note on them): try more, or another --lr " in said
    assert "(this run's 1e-12: too high and too low both stall), " in said
    assert "--optimizer adamw --lr 3e-3, or more --epochs" in said


def test_the_note_is_three_standard_deviations_of_a_guesser_and_a_learned_run_has_none():
    """The margin is the guesser's share plus 3·sqrt(p(1 − p)/n) of the test images; a linear
    model that learned something on digits (45 % after 2 epochs) gets no such note."""
    torch.manual_seed(0)
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05)
    result = train(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), "digits", config=config)
    assert result["test_acc"] > 0.3
    assert result["outcome"] == []
    test = load_dataset("digits", "test")
    share = max(test.class_counts()) / len(test)
    edge = share + 3 * math.sqrt(share * (1 - share) / len(test))
    quiet = constant_net()
    result = train(quiet, "digits", config=TrainConfig(epochs=1, batch_size=32, lr=1e-12))
    assert result["test_acc"] <= edge
    (note,) = result["outcome"]
    assert f"({share:.2%} of the test images)" in note


def test_a_test_set_too_small_to_tell_says_nothing():
    """27 images of one class and 3 of another: a guesser scores 90 % ± 5.5, so even 100 %
    cannot be told from it; no note (it told a perfect model it had not learned)."""
    images = torch.zeros(30, 1, 8, 8, dtype=torch.uint8)
    labels = torch.tensor([0] * 27 + [1] * 3)
    small = ImageSet(images, labels, ("a", "b"), "test")
    config = TrainConfig(optimizer="adamw", lr=3e-4)
    assert guess_note(1.0, small, config) == [] and guess_note(0.9, small, config) == []
    big = ImageSet(images.repeat(20, 1, 1, 1), labels.repeat(20), ("a", "b"), "test")
    (note,) = guess_note(0.9, big, config)  # 600 images: 90 % is the guess, told so
    assert "this run's 0.0003" in note and "--optimizer adamw" not in note


def test_a_run_without_a_test_split_says_nothing():
    """Data given as one ImageSet has no test split: no accuracy to judge, no note (it raised
    AttributeError on the missing split)."""
    images = torch.zeros(64, 1, 8, 8, dtype=torch.uint8)
    data = ImageSet(images, torch.arange(64) % 2, ("a", "b"), "mine")
    config = TrainConfig(epochs=1, batch_size=16, val_fraction=0.0, tta=False)
    result = train(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), data, config=config)
    assert result["outcome"] == [] and guess_note(None, None, config) == []


def test_recalibration_off_is_named_first():
    """A BatchNorm net evaluated on running averages (--bn-recalibrate 0) can read as chance
    (fast on digits: 12.8 %, 95.0 % recomputed): the note names that setting before the lr."""
    images = torch.zeros(600, 1, 8, 8, dtype=torch.uint8)
    test = ImageSet(images, torch.tensor([0] * 540 + [1] * 60), ("a", "b"), "test")
    (note,) = guess_note(0.9, test, TrainConfig(bn_recalibrate=0))
    assert "Turn --bn-recalibrate back on (0 here) if the model has BatchNorm, or try" in note
    (note,) = guess_note(0.9, test, TrainConfig())
    assert "bn-recalibrate" not in note and "Try another --lr" in note
