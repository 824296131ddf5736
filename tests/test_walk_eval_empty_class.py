"""A class with no image in the evaluated split (a folder's class of 1-2 images gets none in
the 20 % hold-out) has no accuracy: the library's class_accuracy gives None, which eval shows
as its count and "-" (and --json as null, Evaluation.to_dict), not the 0 % of 0/0 that reads
as a class never recognised."""

import torch

from cnnlab.cli.evaluate import print_evaluation
from cnnlab.train.evaluate import Evaluation, class_accuracy, confusion_matrix

LABELS = torch.tensor([0, 0, 1, 1, 1])  # class 2 ("fish") has no test image
PREDICTED = torch.tensor([0, 1, 1, 1, 1])


def _evaluation() -> Evaluation:
    confusion = confusion_matrix(PREDICTED, LABELS, 3)
    return Evaluation(
        split="test",
        tta=False,
        classes=("cat", "dog", "fish"),
        n=5,
        accuracy=0.8,
        loss=0.5,
        per_class=class_accuracy(confusion),  # as evaluate() fills it
        confusion=tuple(tuple(row) for row in confusion.tolist()),
    )


def test_a_class_without_images_has_no_accuracy():
    """Truth by hand: cat 1 of 2 right, dog 3 of 3, fish no image (0/0: None, not 0.0)."""
    assert class_accuracy(confusion_matrix(PREDICTED, LABELS, 3)) == (0.5, 1.0, None)


def test_the_table_shows_the_count_and_no_percentage(capsys):
    print_evaluation(_evaluation())
    out = capsys.readouterr().out
    [fish] = [line for line in out.splitlines() if "fish" in line and "│" in line][:1]
    cells = [c.strip() for c in fish.split("│") if c.strip()]
    assert cells == ["fish", "0", "-"], fish
    assert "50.00%" in out and " 0.00%" not in out
