"""An ImageSet built from the user's own arrays: each common slip is refused in one line that
names the conversion, and the conversion named gives back the images and labels meant.

An (N, H, W, C) array was taken as H channels of C-pixel-wide images (a model with
AdaptiveAvgPool trained on columns of pixels, no error); classes=range(10) or a repeated name
trained and wrote a run that load_run then refused; string labels raised AttributeError."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from cnnlab.data import ImageSet
from cnnlab.errors import DataError

CLASSES = ("a", "b", "c")


@pytest.fixture
def pixels() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (12, 3, 5, 7), dtype=torch.uint8, generator=g)


LABELS = torch.arange(12) % 3


def test_channels_last_images_are_refused_with_the_permute(pixels):
    nhwc = np.ascontiguousarray(pixels.numpy().transpose(0, 2, 3, 1))  # as PIL/NumPy hold them
    with pytest.raises(DataError, match=r"\(N, H, W, C\).*permute\(0, 3, 1, 2\)"):
        ImageSet(torch.from_numpy(nhwc), LABELS, CLASSES, "mine")
    fixed = torch.from_numpy(nhwc).permute(0, 3, 1, 2).contiguous()
    assert torch.equal(ImageSet(fixed, LABELS, CLASSES, "mine").images, pixels)


def test_gray_channels_last_too(pixels):
    with pytest.raises(DataError, match="8 channels of 8×1 pixels"):
        ImageSet(torch.zeros(4, 8, 8, 1, dtype=torch.uint8), LABELS[:4], CLASSES, "mine")
    with pytest.raises(DataError, match=r"unsqueeze\(1\)"):
        ImageSet(pixels[:, 0], LABELS, CLASSES, "mine")


def test_numpy_arrays_are_told_torch_from_numpy(pixels):
    with pytest.raises(DataError, match=r"ndarray: pass torch\.from_numpy\(images\)"):
        ImageSet(pixels.numpy(), LABELS, CLASSES, "mine")
    with pytest.raises(DataError, match=r"torch\.from_numpy\(labels\)\.long\(\)"):
        ImageSet(pixels, LABELS.numpy(), CLASSES, "mine")


@pytest.mark.parametrize(
    ("scale", "fix"),
    [(1 / 255, r"\(images \* 255\)\.round\(\)"), (1.0, r"images\.round\(\)\.to")],
)
def test_float_images_are_told_the_conversion_of_their_range(pixels, scale, fix):
    floats = pixels.double() * scale  # [0, 1] (as ToTensor gives) or 0..255 in floats
    with pytest.raises(DataError, match=fix):
        ImageSet(floats, LABELS, CLASSES, "mine")
    converted = (floats * 255).round() if scale < 1 else floats.round()
    assert torch.equal(converted.to(torch.uint8), pixels)  # the conversion named is exact


def test_normalized_images_are_told_to_scale_first(pixels):
    with pytest.raises(DataError, match="in -1..1: scale them to 0..255 first"):
        ImageSet(pixels.float() / 127.5 - 1, LABELS, CLASSES, "mine")


def test_labels_counted_from_one_are_named(pixels):
    with pytest.raises(DataError, match=r"count from 1: use labels - 1"):
        ImageSet(pixels, LABELS + 1, CLASSES, "mine")
    with pytest.raises(DataError, match="negative label"):
        ImageSet(pixels, LABELS - 1, CLASSES, "mine")


@pytest.mark.parametrize(
    ("labels", "fix"),
    [
        (LABELS.int(), r"int32: use labels\.long\(\)"),
        (LABELS.float(), r"float32: use labels\.long\(\)"),
        (torch.nn.functional.one_hot(LABELS, 3), r"one-hot rows: use labels\.argmax\(1\)"),
        (LABELS[:, None], r"labels\.flatten\(\)"),
        ([CLASSES[i] for i in LABELS], r"classes\.index\(c\)"),
    ],
)
def test_labels_of_another_form_name_the_conversion(pixels, labels, fix):
    with pytest.raises(DataError, match=fix):
        ImageSet(pixels, labels, CLASSES, "mine")


def test_class_names_are_distinct_strings(pixels):
    labels = LABELS % 2
    with pytest.raises(DataError, match=r"must be strings.*str\(c\)"):
        ImageSet(pixels, labels, range(2), "mine")
    with pytest.raises(DataError, match="'a' is given twice"):
        ImageSet(pixels, LABELS, ("a", "a", "c"), "mine")
    with pytest.raises(DataError, match="got the string 'ab'"):
        ImageSet(pixels, labels, "ab", "mine")


def test_many_class_names_are_checked_in_one_pass(pixels):
    # each subset and split builds an ImageSet: a count per name took 5.5 s at 20,000 names
    import time

    names = [f"class {i}" for i in range(20_000)]
    start = time.perf_counter()
    ds = ImageSet(pixels, LABELS, names, "mine")
    assert time.perf_counter() - start < 1.0 and len(ds.classes) == 20_000
    with pytest.raises(DataError, match="'class 3', 'class 7' is given twice"):
        ImageSet(pixels, LABELS, [*names, "class 7", "class 3"], "mine")


def test_a_valid_set_is_taken_as_given(pixels):
    ds = ImageSet(pixels, LABELS, list(CLASSES), "mine")
    assert ds.classes == CLASSES and ds.shape == (3, 5, 7) and ds.class_counts() == [4, 4, 4]
    # a class with no image is a valid set (a label value the split lacks)
    assert ImageSet(pixels, LABELS, (*CLASSES, "d"), "mine").class_counts()[-1] == 0


@pytest.mark.parametrize("shape", [(6, 2, 1, 1), (6, 5, 8, 8), (6, 8, 3, 3), (6, 16, 4, 4)])
def test_other_channel_counts_in_the_layout_given_are_taken(shape):
    """Only more channels than a file holds on an image narrower than high reads as
    (N, H, W, C): two id channels of 1×1, 5-band images, 8 or 16 maps of 3×3 or 4×4 pass."""
    assert (
        ImageSet(torch.zeros(shape, dtype=torch.uint8), LABELS[:6], CLASSES, "m").shape == shape[1:]
    )


def test_source_is_text_a_path_is_taken_as_text(pixels, tmp_path):
    """A Path source failed json.dumps after the run directory was made; None made a run
    told 'imported without --data'."""
    assert ImageSet(pixels, LABELS, CLASSES, tmp_path).source == str(tmp_path)
    for source in (None, 42, ""):
        with pytest.raises(DataError, match="source names where its images came from"):
            ImageSet(pixels, LABELS, CLASSES, source)


def test_a_dict_of_classes_is_told_the_label_order(pixels):
    """A {name: index} dict (torchvision's class_to_idx) inserted out of order gave the
    names in insertion order: ('b', 'a', 'c') named label 0 'b', without an error."""
    class_to_idx = {"b": 1, "a": 0, "c": 2}
    with pytest.raises(DataError, match=r"got a dict.*sorted\(d, key=d\.get\)"):
        ImageSet(pixels, LABELS, class_to_idx, "mine")
    fixed = ImageSet(pixels, LABELS, sorted(class_to_idx, key=class_to_idx.get), "mine")
    assert all(fixed.classes[i] == name for name, i in class_to_idx.items())
    with pytest.raises(DataError, match=r"\[d\[i\] for i in range\(len\(d\)\)\]"):
        ImageSet(pixels, LABELS, {1: "b", 0: "a", 2: "c"}, "mine")


@pytest.mark.parametrize("stray", ["rounded past 1", "bicubic overshoot"])
def test_floats_straying_just_outside_0_1_are_told_to_scale_and_clamp(pixels, stray):
    """[0, 1] floats a little past 1.0 (arithmetic) or below 0 (bicubic resizing) are pixels
    in [0, 1]: told to scale by 255 and clamp, never .round() alone (all 0 or 1, black)."""
    floats = pixels.float() / 255
    if stray == "rounded past 1":
        floats = floats * (1 + 1e-6)
    else:
        floats = torch.nn.functional.interpolate(floats, scale_factor=2, mode="bicubic")
    assert float(floats.max()) > 1
    with pytest.raises(DataError) as error:
        ImageSet(floats, LABELS, CLASSES, "mine")
    fix = re.search(r"use (\(images \* 255\).*?\.to\(torch\.uint8\))", str(error.value))
    assert fix, str(error.value)
    converted = eval(fix.group(1), {"torch": torch, "images": floats})  # the fix, as written
    truth = (floats.clamp(0, 1) * 255).round().to(torch.uint8)
    assert torch.equal(ImageSet(converted, LABELS, CLASSES, "mine").images, truth)
