"""A folder's train and test splits come in a fixed shuffled order, as Fashion-MNIST's do:
the commands that take the first N images (probe --train/--test, diagnose --limit, the
report's samples) took the first classes alone from a class-ordered split (probe --train 20
--test 6 on 4 classes fitted 2 classes and tested 1, and printed 100 % at every layer)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnlab.data import image_folder, load_dataset
from cnnlab.data.folder import interleaved_order


def _folder(root):
    for c, cls in enumerate("abcd"):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((4, 4), 10 * c + i, np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_the_first_images_of_a_split_hold_every_class(tmp_path):
    root = _folder(tmp_path / "f")
    train, test = load_dataset(root, "train"), load_dataset(root, "test")
    assert set(train.labels[:12].tolist()) == {0, 1, 2, 3}
    assert set(test.labels[:4].tolist()) == {0, 1, 2, 3}


def test_the_order_is_fixed_and_the_images_are_the_files(tmp_path):
    root = _folder(tmp_path / "f")
    first, again = image_folder(root, split="train"), image_folder(root, split="train")
    assert (first.images == again.images).all() and (first.labels == again.labels).all()
    test = image_folder(root, split="test")
    # every file once, with its own class (each file's gray level 10*class + index is unique)
    levels = sorted(int(v) for v in np.concatenate([first.images, test.images])[:, 0, 0, 0])
    assert levels == sorted(10 * c + i for c in range(4) for i in range(10))
    for ds in (first, test):
        assert (ds.images[:, 0, 0, 0] // 10 == ds.labels).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=200), st.integers(0, 2**16))
def test_every_prefix_holds_each_class_in_its_share(labels, seed):
    labels = np.array(labels)
    order = interleaved_order(labels, seed)
    assert sorted(order.tolist()) == list(range(len(labels)))  # a permutation
    n, classes = len(labels), np.unique(labels)
    for c in classes:
        share = (labels == c).sum() / n
        seen = np.cumsum(labels[order] == c)  # images of c among the first m, m = 1..n
        m = np.arange(1, n + 1)
        assert (np.abs(seen - m * share) < 1 + len(classes) * share + 1e-9).all()
