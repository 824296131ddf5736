"""Which data a run is scored on again. An ImageSet whose source text names a data set
("digits") is recorded as that set only when its images, label for label, are that set's
(its train split for the training set, its test split for the test set); other images so
named are recorded as given in Python, which no command reads again. Before, 28×28 arrays
of the user's named "digits" were recorded as digits, and eval scored sklearn's digits in
their place (only the class count was checked)."""

from __future__ import annotations

import json

import pytest
import torch
from sklearn.metrics import accuracy_score

from cnnlab.cli import main
from cnnlab.data import ImageSet, load_dataset, to_float
from cnnlab.errors import DataError, RunError
from cnnlab.train import TrainConfig, load_run, train
from cnnlab.train.evaluate import evaluate
from cnnlab.train.inputs import memory_record

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

CONFIG = TrainConfig(epochs=1, batch_size=32, precision="fp32", tta=False)
CLASSES = tuple(str(i) for i in range(10))


def spec(side: int) -> dict:
    return {"name": "tiny", "input": [1, side, side], "layers": ["flatten", {"linear": 10}]}


def own_images(n: int = 200, side: int = 28) -> ImageSet:
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 1, side, side), dtype=torch.uint8, generator=gen)
    return ImageSet(images, torch.arange(n) % 10, CLASSES, source="digits")


def in_memory(out) -> bool:
    return bool(json.loads((out / "config.json").read_text()).get("data_in_memory"))


def test_own_images_named_digits_are_not_scored_on_sklearns_digits(tmp_path, capsys):
    mine = own_images()
    train(spec(28), mine, tmp_path / "run", CONFIG)
    assert in_memory(tmp_path / "run")
    run = load_run(tmp_path / "run")
    with pytest.raises(RunError, match="images given in Python.*not as the train and test"):
        evaluate(run)
    assert main(["eval", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no command can read again" in err
    # the images the user has still score, as the message says
    with torch.no_grad():
        predicted = run.model(to_float(mine.images, run.mean, run.std)).argmax(1)
    assert evaluate(run, mine).accuracy == pytest.approx(accuracy_score(mine.labels, predicted))


def test_a_real_subset_of_digits_named_digits_reopens_as_digits(tmp_path, capsys):
    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    part = tr.subset(torch.arange(0, len(tr), 2), source="digits")
    held = te.subset(te.labels < 7, source="digits")
    train(spec(8), (part, held), tmp_path / "run", CONFIG)
    assert not in_memory(tmp_path / "run")
    run = load_run(tmp_path / "run")
    with torch.no_grad():
        predicted = run.model(to_float(te.images, run.mean, run.std)).argmax(1)
    truth = accuracy_score(te.labels, predicted)  # sklearn's digits' whole test split
    assert evaluate(run).accuracy == pytest.approx(truth)
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(truth)


def test_a_subset_converted_as_load_dataset_converts_keeps_its_name():
    tr = load_dataset("digits", "train", size=12)
    assert memory_record(tr.subset(tr.labels < 5, source="digits")) == {}


@pytest.mark.parametrize(
    "case", ["one image not digits", "labels shuffled", "test split trained on", "test not test"]
)
def test_digits_images_that_are_not_digits_train_split_are_in_memory(case):
    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    images, labels, test = tr.images.clone(), tr.labels.clone(), None
    if case == "one image not digits":
        images[5] = 255 - images[5]
    elif case == "labels shuffled":
        labels = (labels + 1) % 10
    elif case == "test split trained on":  # eval would score its training images as unseen
        images, labels = te.images, te.labels
    else:
        test = ImageSet(tr.images[:50], tr.labels[:50], tr.classes, "digits")
    given = ImageSet(images, labels, tr.classes, "digits")
    assert memory_record((given, test)) == {"data_in_memory": True}


def test_a_set_not_installed_cannot_be_checked_and_is_in_memory(monkeypatch):
    """Fashion-MNIST's files not found: the name reads nothing here, so the run keeps none."""

    def missing(*args, **kwargs):
        raise DataError("Fashion-MNIST train files not found")

    monkeypatch.setattr("cnnlab.data.fashion.find_fashion_mnist", missing)
    mine = own_images()
    named = ImageSet(mine.images, mine.labels, CLASSES, "fashion-mnist")
    assert memory_record(named) == {"data_in_memory": True}


def test_half_of_fashion_mnist_named_so_keeps_its_name():
    try:
        tr = load_dataset("fashion-mnist", "train")
    except DataError:
        pytest.skip("Fashion-MNIST is not installed here")
    half = tr.subset(torch.arange(1, len(tr), 2), source="fashion-mnist")
    assert memory_record(half) == {}
    swapped = ImageSet(half.images, half.labels.flip(0), half.classes, "fashion-mnist")
    assert memory_record(swapped) == {"data_in_memory": True}


def test_the_data_check_runs_before_force_removes_the_old_run(tmp_path, monkeypatch):
    """memory_record may read a named set again (a folder decoded anew): a failure there,
    of any kind, leaves the run --force was to replace as it was."""
    from cnnlab.train import TrainConfig, loop, train

    out = tmp_path / "run"
    quick = TrainConfig(epochs=1, batch_size=64, precision="fp32", tta=False)
    train("lenet5", "digits", out, quick)
    before = (out / "model.safetensors").read_bytes()

    def failing(data):
        raise OSError("disk error while reading the data again")

    monkeypatch.setattr(loop, "memory_record", failing)
    with pytest.raises(OSError, match="disk error"):
        train("lenet5", "digits", out, quick, force=True)
    assert (out / "model.safetensors").read_bytes() == before
