"""ImageSet, split, statistics, to_float, digits and shapes, against torch's mean/std,
scikit-learn's load_digits and the shapes' own geometry."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cnnlab.data import (
    ImageSet,
    digits,
    load_dataset,
    normalization_stats,
    resize_crop,
    shapes,
    to_float,
    train_val_split,
)
from cnnlab.errors import DataError


def labelled(n, classes=3, c=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, c, 4, 4), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    return ImageSet(images, labels, tuple("abcdefghij"[:classes]), "test")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(10, 200), frac=st.floats(0.05, 0.5), seed=st.integers(0, 99))
def test_split_is_disjoint_complete_stratified_and_seeded(n, frac, seed):
    labels = torch.arange(n) % 3
    labels[: n // 3] = 0  # unequal classes
    ds = ImageSet(torch.arange(n).byte().view(n, 1, 1, 1), labels, ("a", "b", "c"), "ids")
    train, val = train_val_split(ds, frac, seed)
    ids = lambda s: s.images.flatten().tolist()  # noqa: E731 - pixel value = image index
    assert set(ids(train)).isdisjoint(ids(val)) and len(train) + len(val) == n
    assert len(val) == int(frac * n + 0.5)
    for k, v in zip(ds.class_counts(), val.class_counts(), strict=True):
        assert abs(v - frac * k) < 1  # each class in proportion, off by less than one image
    assert torch.equal(train_val_split(ds, frac, seed)[1].images, val.images)


def test_split_rejects_bad_fraction_and_empty_val():
    with pytest.raises(DataError, match="val_fraction"):
        train_val_split(labelled(10), 1.0)
    with pytest.raises(DataError, match="no validation image"):
        train_val_split(labelled(4), 0.1)


@settings(max_examples=25, deadline=None)
@given(
    images=arrays(np.uint8, st.tuples(st.integers(1, 5), st.integers(1, 3), st.just(3), st.just(2)))
)
def test_normalization_stats_match_torch_mean_std(images):
    x = torch.from_numpy(images)
    mean, std = normalization_stats(x)
    f = x.double() / 255
    assert np.allclose(mean, f.mean((0, 2, 3)).tolist(), atol=1e-9)
    assert np.allclose(std, f.std((0, 2, 3), unbiased=False).tolist(), atol=1e-6)
    z = to_float(x, mean, std)
    assert z.dtype == torch.float32
    spread = f.std((0, 2, 3), unbiased=False)
    # float32's rounding of x / 255 and of the mean, before the division: at most 2 eps / std
    # (a nearly constant channel, std 0.002, is off by 1.3e-5 in its mean)
    bound = 2 * torch.finfo(torch.float32).eps / torch.where(spread > 0, spread, 1.0)
    assert (z.double().mean((0, 2, 3)).abs() <= bound).all()
    live = spread > 1e-3
    assert torch.allclose(
        z.double().std((0, 2, 3), unbiased=False)[live],
        torch.ones(int(live.sum())).double(),
        atol=1e-4,
    )


def test_to_float_leaves_float_input_unchanged_and_checks_channels():
    x = torch.rand(2, 1, 3, 3)
    before = x.clone()
    z = to_float(x, (0.5,), (0.25,))
    assert torch.equal(x, before) and torch.allclose(z, (before - 0.5) / 0.25)
    with pytest.raises(DataError, match="one mean and std per channel"):
        to_float(x, (0.5, 0.5), (1, 1))


def test_imageset_validates():
    with pytest.raises(DataError, match="uint8"):
        ImageSet(torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long), ("a",), "src")
    with pytest.raises(DataError, match="labels span 0..3 but there are 2 classes"):
        ImageSet(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 3]), ("a", "b"), "s")


def test_digits_match_sklearn_and_split_is_fixed():
    from sklearn.datasets import load_digits

    train, test = digits("train"), load_dataset("digits", "test")
    assert (len(train), len(test)) == (1438, 359)
    assert train.images.shape[1:] == (1, 8, 8) and train.classes[3] == "3"
    bunch = load_digits()
    scaled = {tuple(np.rint(im * 255 / 16).astype(np.uint8).ravel()) for im in bunch.images[:50]}
    every = {tuple(im.ravel().tolist()) for im in torch.cat([train.images, test.images]).numpy()}
    assert scaled <= every
    assert int(train.images.max()) == 255
    assert torch.equal(digits("test").images, test.images)


def test_shapes_are_seeded_balanced_and_drawn_where_labelled():
    a, b = shapes("train", n=40, size=24, seed=1), shapes("train", n=40, size=24, seed=1)
    assert torch.equal(a.images, b.images) and a.class_counts() == [10, 10, 10, 10]
    assert not torch.equal(a.images, shapes("test", n=40, size=24, seed=1).images)
    bright = a.images[:, 0] >= 128  # the shape; the background noise stays below 32
    for mask, label in zip(bright, a.labels.tolist(), strict=True):
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].float()
        fill = box.mean().item()
        name = a.classes[label]
        # fill of the bounding box: square 1, circle π/4, triangle 1/2, cross 5/9·(r/3 arms)
        expected = {"square": 1.0, "circle": np.pi / 4, "triangle": 0.5, "cross": 0.55}[name]
        assert abs(fill - expected) < 0.2, (name, fill)
    assert len(load_dataset("shapes", "test")) == 1000


def test_resize_crop_center_crops_after_cover():
    img = torch.zeros(1, 1, 4, 8, dtype=torch.uint8)
    img[..., 2:6] = 200
    out = resize_crop(img, 4)  # already covers 4×4: a pure center crop of columns 2..5
    assert torch.equal(out, img[..., 2:6])
    assert resize_crop(img, (8, 16)).shape == (1, 1, 8, 16)


@pytest.mark.parametrize("name", ["/nonexistent", "./missing", "~/no-such-cnnlab-dir", "a/b"])
def test_a_missing_directory_is_named_as_a_directory(name):
    with pytest.raises(DataError, match="no such directory") as e:
        load_dataset(name)
    assert "unknown data set" not in str(e.value) and name in str(e.value)


def test_a_file_given_as_data_is_not_a_directory(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="x.png: not a directory"):
        load_dataset(str(tmp_path / "x.png"))
    with pytest.raises(DataError, match="unknown data set 'cifar'"):  # a name stays a name
        load_dataset("cifar")
