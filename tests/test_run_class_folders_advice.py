"""A run whose folder is read again with other class folders than it recorded is refused
with the class folders to give, by name and in label order. A run made by `cnnlab import
--classes a,b,c --data DIR` names DIR's classes its own way: the folders to give are DIR's
(cat, dog, owl), not the run's names; it was told to "restore the class folders as they
were" when given a folder of class folders a, b, c, which it never had. Truth: the advice
followed evaluates, as sklearn's accuracy_score of run.model's predictions says."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from sklearn.metrics import accuracy_score

from cnnlab.cli import main
from cnnlab.data import load_dataset, to_float
from cnnlab.train import load_run

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

NET = """
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(2, 3))
"""
FOLDERS, NAMES = ("cat", "dog", "owl"), ("a", "b", "c")


def folder(root, names) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 3)):
        for i, name in enumerate(names):
            (root / split / name).mkdir(parents=True)
            for j in range(n):
                pixels = (rng.integers(0, 60, (8, 8)) + 90 * i).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{j}.png")


@pytest.fixture
def imported(tmp_path, capsys):
    folder(tmp_path / "data", FOLDERS)
    (tmp_path / "net.py").write_text(NET)
    namespace: dict = {}
    exec(NET, namespace)
    save_file(namespace["make"]().state_dict(), tmp_path / "w.safetensors")
    args = ["import", "--model", f"{tmp_path / 'net.py'}:make", "--weights",
            str(tmp_path / "w.safetensors"), "--data", str(tmp_path / "data"), "--classes",
            ",".join(NAMES), "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    return tmp_path


def refusal(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


ADVICE = "give a folder whose class folders are named cat, dog, owl, in that order"


def test_class_folders_renamed_as_the_runs_names_are_told_the_folders_to_give(imported, capsys):
    data = imported / "data"
    for split in ("train", "test"):
        for old, new in zip(FOLDERS, NAMES, strict=True):
            (data / split / old).rename(data / split / new)
    assert main(["eval", str(imported / "run"), "--json"]) == 2
    err = refusal(capsys)
    assert ADVICE in err and "which it calls a, b, c" in err
    assert "restore the class folders as they were" not in err
    for split in ("train", "test"):  # the advice, followed
        for old, new in zip(FOLDERS, NAMES, strict=True):
            (data / split / new).rename(data / split / old)
    assert main(["eval", str(imported / "run"), "--json"]) == 0
    run, test = load_run(imported / "run"), load_dataset(str(data), "test")
    with torch.no_grad():
        predicted = run.model(to_float(test.images, run.mean, run.std)).argmax(1)
    accuracy = json.loads(capsys.readouterr().out)["accuracy"]
    assert accuracy == pytest.approx(accuracy_score(test.labels, predicted))


def test_a_folder_of_the_runs_names_given_with_data_is_told_the_folders_to_give(imported, capsys):
    folder(imported / "named", NAMES)
    assert main(["eval", str(imported / "run"), "--data", str(imported / "named")]) == 2
    err = refusal(capsys)
    assert ADVICE in err and "restore the class folders as they were" not in err


def test_a_trained_runs_folder_renamed_is_told_its_own_class_folders(tmp_path, capsys):
    from cnnlab.train import TrainConfig, train

    folder(tmp_path / "data", FOLDERS)
    spec = {"input": [1, 8, 8], "layers": ["flatten", {"linear": 3}]}
    config = TrainConfig(epochs=1, batch_size=4, precision="fp32", tta=False)
    train(spec, str(tmp_path / "data"), tmp_path / "run", config)
    for split in ("train", "test"):
        (tmp_path / "data" / split / "owl").rename(tmp_path / "data" / split / "eel")
    assert main(["eval", str(tmp_path / "run")]) == 2
    err = refusal(capsys)
    assert ADVICE in err and "which it calls" not in err


def test_an_imported_runs_folder_moved_is_found_by_its_own_class_folders(imported, capsys):
    """with_data compares --data's class folders with the folder's (cat, dog, owl), not the
    names --classes gave (a, b, c): the run's own folder, moved, was refused as other classes."""
    (imported / "data").rename(imported / "moved")
    assert main(["eval", str(imported / "run"), "--data", str(imported / "moved"), "--json"]) == 0
    run, test = load_run(imported / "run"), load_dataset(str(imported / "moved"), "test")
    with torch.no_grad():
        predicted = run.model(to_float(test.images, run.mean, run.std)).argmax(1)
    accuracy = json.loads(capsys.readouterr().out)["accuracy"]
    assert accuracy == pytest.approx(accuracy_score(test.labels, predicted))
    folder(imported / "named", NAMES)  # the run's names as folders: not its folder
    assert main(["eval", str(imported / "run"), "--data", str(imported / "named")]) == 2
    err = refusal(capsys)
    assert "class folders are named cat, dog, owl" in err
    assert err.startswith(
        f"cnnlab eval: error: --data {imported / 'named'} holds the classes a, b, c"
    )
