"""A class with no image in the evaluated split (a folder's class of 1-2 images gets none in
the 20 % hold-out) has no accuracy (None), in the library's evaluation (`class_accuracy`,
`evaluate`, its `to_dict`, the report's results) as in `cnnlab eval`, which shows its count
and "-": 0.0 would read as a class never recognised."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from cnnlab.cli.evaluate import print_evaluation
from cnnlab.train.evaluate import Evaluation, class_accuracy, confusion_matrix, evaluate

CLASSES = ["cat", "dog", "fish"]
LABELS = torch.tensor([0, 0, 1, 1, 1])  # "fish" has no image
PREDICTED = torch.tensor([0, 1, 1, 1, 1])


class Fixed(nn.Module):
    """Predicts class 1 ("dog") for every image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([0.0, 1.0, 0.0]).expand(len(x), 3) + 0 * x.flatten(1)[:, :1]


class Split:
    images = torch.zeros(5, 1, 4, 4, dtype=torch.uint8)
    labels = LABELS

    def __len__(self) -> int:
        return len(self.labels)


def fake_run() -> SimpleNamespace:
    return SimpleNamespace(
        dataset=lambda split, progress=None: Split(),
        preprocess=lambda images: images.float(),
        model=Fixed(),
        autocast=None,
        config={"classes": CLASSES, "flip": False},
        classes=CLASSES,
    )


def test_evaluate_gives_none_for_a_class_without_images():
    result = evaluate(fake_run())
    assert result.per_class == (0.0, 1.0, None)
    shown = json.loads(json.dumps(result.to_dict()))
    assert shown["per_class"] == {"cat": 0.0, "dog": 1.0, "fish": None}


def test_the_report_evaluation_gives_none_for_a_class_without_images():
    from cnnlab.report.sources import Budget, Sources

    run = fake_run()
    src = Sources(Path("."), run, None, Budget())
    images = Split.images
    src.__dict__["_test"] = (True, (images, images.float(), LABELS))  # `test`, cached
    evaluation, _ = src.evaluation
    assert evaluation.per_class == (0.0, 1.0, None)


def test_the_report_marks_the_class_and_draws_no_bar(monkeypatch):
    import cnnlab.report.plots as plots
    from cnnlab.report import show

    evaluation = Evaluation(
        split="test", tta=False, classes=tuple(CLASSES), n=5, accuracy=0.6, loss=1.0,
        per_class=(0.0, 1.0, None), confusion=((0, 2, 0), (0, 3, 0), (0, 0, 0)),
    )  # fmt: skip
    facts = SimpleNamespace(overview=SimpleNamespace(classes=CLASSES))
    results = SimpleNamespace(evaluation=evaluation)
    [real] = show.show_per_class(results, facts)  # matplotlib draws it
    assert real["src"].startswith("data:image/png")
    drawn = {}

    def hbars(names, values, *args):
        drawn.update(names=list(names), values=list(values), colours=args[-1])
        return "data:image/png;base64,"

    monkeypatch.setattr(plots, "hbars", hbars)
    [figure] = show.show_per_class(results, facts)
    assert drawn["names"] == ["cat", "dog", "fish (no images)"]
    assert drawn["values"] == [0.0, 100.0, 0.0]
    assert drawn["colours"] == [plots.BAD, "C0", "C0"]  # the mean is of cat and dog
    assert "no images" in figure["caption"]


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
