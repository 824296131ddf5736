"""load_dataset and load_splits pass their `progress` to an image folder's reading, file by
file (cnnlab.inspect.progress's contract: 0 first, rising to the files listed)."""

from __future__ import annotations

from cnnlab.data import load_dataset, load_splits
from folder_images import save


def folder(root, per_class: int = 5):
    for c in ("cat", "dog"):
        for i in range(per_class):
            save(root / c / f"{i}.png", 40 * i)
    return root


def test_load_dataset_reports_each_file_of_a_folder(tmp_path):
    calls = []
    ds = load_dataset(folder(tmp_path), "train", progress=lambda *a: calls.append(a))
    done = [d for d, _, _ in calls]
    assert calls[0][0] == 0 and done == sorted(done)
    assert {what for _, _, what in calls} == {"reading images"}
    assert calls[-1][0] == calls[-1][1] == len(ds) == 8  # the train split's files


def test_load_splits_reports_both_splits_and_a_named_set_nothing(tmp_path):
    calls = []
    train, test = load_splits(folder(tmp_path), progress=lambda *a: calls.append(a))
    ends = [c[0] for c in calls if c[0] == c[1]]
    assert ends == [len(train), len(test)] == [8, 2]
    calls.clear()
    load_splits("digits", progress=lambda *a: calls.append(a))
    assert calls == []
