"""A run no better than always guessing the most frequent class is said so, with what to
try: its table alone (train and test accuracy near chance) read as a finished training."""

import math

import torch
from torch import nn

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.train import TrainConfig, train


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
    assert "is no better than always guessing the most frequent class" in said, said
    assert "Try a smaller --lr (this run's 1e-12), --optimizer adamw --lr 3e-3" in said


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
