"""Notes on what the data given to `train` means for the run, said after it (train's
`notes`): a class the training set lacks, a test set that is the training set, training on
a test split or on the train/ or test/ folder of a DIR/train + DIR/test layout. Each is a
run that trains and scores without an error, on something other than the user meant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnlab.data import ImageSet
from cnnlab.data.sets import dataset_name


def unseen_classes_note(train_part: ImageSet) -> list[str]:
    """A note naming the classes without a training image (an ImageSet whose classes list
    names more than its labels use, a subset that lost a class): the model has an output
    for each but is never shown one, so it cannot learn them; training gave no sign."""
    counts = train_part.class_counts()
    unseen = [c for c, n in zip(train_part.classes, counts, strict=True) if not n]
    if not unseen:
        return []
    shown = ", ".join(unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
    return [
        f"{len(unseen)} of the {len(train_part.classes)} classes had no training image "
        f"({shown}): the model was never shown one and cannot learn to tell it; if the "
        "classes list is longer than the labels meant, give only the classes the labels use"
    ]


def shared_images_note(train_part: ImageSet, test: ImageSet | None) -> list[str]:
    """A note when half the test images or more are training images too (the same set
    passed as both, `(ds, ds)`): the test accuracy then measures memory, not what the model
    does on images it has not seen. A few shared images (Fashion-MNIST's duplicates) pass."""
    if test is None or not len(test):
        return []
    shared = int(torch.isin(_image_hashes(test), _image_hashes(train_part)).sum())
    if 2 * shared < len(test):
        return []
    return [
        f"{shared} of the {len(test)} test images are training images too: the test "
        "accuracy measures what the model remembers, not how it does on unseen images; "
        "give a test set held out from the training images"
    ]


def _image_hashes(ds: ImageSet) -> torch.Tensor:
    return image_hashes(ds.images)


# An odd weight for the label: a label differing by less than 2^64 always changes the sum
_LABEL_WEIGHT = 0x9E3779B97F4A7C15 - 2**64


def image_hashes(images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """One int64 per image: its pixels dotted with fixed random weights (seed 0, one per
    pixel), plus its label times an odd constant if given, wrapping modulo 2^64: two
    different images (or one image under two labels) collide with a chance near 2^-62;
    4,096 images at a time (60,000 28×28 images: 0.23 s on one core)."""
    flat = images.reshape(len(images), -1)
    gen = torch.Generator().manual_seed(0)
    weights = torch.randint(-(2**62), 2**62, (flat.shape[1],), generator=gen, dtype=torch.int64)
    hashes = torch.cat([chunk.long() @ weights for chunk in flat.split(4096)] or [weights[:0]])
    return hashes if labels is None else hashes + labels.long() * _LABEL_WEIGHT


def test_split_note(data: Any) -> list[str]:
    """A note when the training images are a test split `load_dataset` read (a (test, train)
    pair swapped, or load_dataset(name, "test") trained on): what the data set holds out
    for testing was learned from."""
    first = data[0] if isinstance(data, tuple | list) else data
    if not isinstance(first, ImageSet) or first.loaded_split != "test":
        return []
    return [
        f"the training images are the test split of {first.loaded_as} "
        f"(load_dataset(..., 'test')); train on load_dataset(name, 'train') and keep the "
        "test split for testing"
    ]


def split_folder_note(name: Any) -> list[str]:
    """A note when the data is the train/ or test/ folder of a DIR/train + DIR/test layout
    (`--data DIR/train`, as a class-per-folder tree it is): its sibling is not read, the test
    images are 20 % held out of it, and given test/ the model learns the test images."""
    if not isinstance(name, str) or dataset_name(name) is not None:
        return []
    folder = Path(name)
    other = {"train": "test", "test": "train"}.get(folder.name.lower())
    if other is None or not folder.is_dir() or not (folder.parent / other).is_dir():
        return []
    learned = (
        f"the model was trained on {folder.name}/, the images {folder.parent} keeps for testing"
        if other == "train"
        else f"{folder.parent / other} was not read; the test images were held out of "
        f"{folder.name}/"
    )
    return [f"{learned}: give {folder.parent} as the data to train on train/ and test on test/"]
