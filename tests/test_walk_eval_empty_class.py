"""A class with no image in the evaluated split (a folder's class of 1-2 images gets none in
the 20 % hold-out) has no accuracy: eval shows its count and "-", and --json null, not the
0 % of 0/0 that reads as a class never recognised."""

import torch

from cnnlab.cli.evaluate import per_class, print_evaluation
from cnnlab.train.evaluate import Evaluation, confusion_matrix


def _evaluation() -> Evaluation:
    labels = torch.tensor([0, 0, 1, 1, 1])  # class 2 ("fish") has no test image
    predicted = torch.tensor([0, 1, 1, 1, 1])
    confusion = confusion_matrix(predicted, labels, 3)
    return Evaluation(
        split="test",
        tta=False,
        classes=("cat", "dog", "fish"),
        n=5,
        accuracy=0.8,
        loss=0.5,
        per_class=(0.5, 1.0, 0.0),  # what a zero row gives divided by its clamped total
        confusion=tuple(tuple(row) for row in confusion.tolist()),
    )


def test_a_class_without_images_has_no_accuracy():
    result = _evaluation()
    assert per_class(result) == [0.5, 1.0, None]


def test_the_table_shows_the_count_and_no_percentage(capsys):
    print_evaluation(_evaluation())
    out = capsys.readouterr().out
    [fish] = [line for line in out.splitlines() if "fish" in line and "│" in line][:1]
    cells = [c.strip() for c in fish.split("│") if c.strip()]
    assert cells == ["fish", "0", "-"], fish
    assert "50.00%" in out and " 0.00%" not in out
