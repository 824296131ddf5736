"""`cnnlab eval`'s confusion matrix names each row by its column number and class name, and
by the number alone when the class is named by it (digits' rows read '0 0', '1 1')."""

from __future__ import annotations

from cnnlab.cli.evaluate import print_evaluation
from cnnlab.train.evaluate import Evaluation


def rows(capsys, classes):
    evaluation = Evaluation(
        split="test", tta=False, classes=tuple(classes), n=5, accuracy=0.6, loss=1.0,
        per_class=(0.0, 1.0), confusion=((0, 2), (0, 3)),
    )  # fmt: skip
    print_evaluation(evaluation)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    return [line.split("│")[1].strip() for line in lines[-len(classes) :]]  # the last table


def test_digit_classes_are_named_once(capsys):
    assert rows(capsys, ["0", "1"]) == ["0", "1"]


def test_named_classes_keep_their_column_number(capsys):
    assert rows(capsys, ["cat", "dog"]) == ["0 cat", "1 dog"]
