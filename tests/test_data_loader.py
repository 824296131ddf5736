"""Loader: coverage per epoch, sharding, determinism and mid-epoch resume. Each image holds its
own index in every pixel, so a batch tells which samples it carries."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.data import Augment, Loader
from cnnlab.errors import DataError


def indexed(n, c=1, h=4, w=4):
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, c, h, w).clone()
    return images, torch.arange(n) % 10


def served(loader):
    """Sample indices in the order served, checking each label matches its image."""
    out = []
    for x, y in loader:
        idx = x[:, 0, 0, 0].long()
        assert torch.equal(y, idx % 10)
        out.append(idx)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), bs=st.integers(1, 16), epoch=st.integers(0, 5), shuffle=st.booleans())
def test_every_index_exactly_once_per_epoch(n, bs, epoch, shuffle):
    loader = Loader(*indexed(n), bs, shuffle=shuffle, seed=3)
    loader.set_epoch(epoch)
    got = served(loader)
    assert sorted(got.tolist()) == list(range(n))
    assert len(list(loader)) == len(loader) == -(-n // bs)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(4, 60), bs=st.integers(1, 8), world=st.integers(2, 4), drop=st.booleans())
def test_shards_partition_the_data_with_equal_batch_counts(n, bs, world, drop):
    images, labels = indexed(n)
    loaders = [
        Loader(images, labels, bs, seed=1, rank=r, world_size=world, drop_last=drop)
        for r in range(world)
    ]
    for loader in loaders:
        loader.set_epoch(2)
    shards = [served(loader) for loader in loaders]
    assert len({len(loader) for loader in loaders}) == 1
    assert len({len(list(loader)) for loader in loaders}) == 1
    everything = torch.cat(shards).tolist()
    if n % world == 0 and not drop:
        assert sorted(everything) == list(range(n))  # a partition: disjoint and complete
    elif not drop:  # padded by wrapping: complete, fewer than `world` repeats
        assert set(everything) == set(range(n)) and len(everything) - n < world
    else:  # remainder dropped: disjoint
        assert len(set(everything)) == len(everything)
        assert all(len(s) == len(shards[0]) and len(s) % bs == 0 for s in shards)


def test_same_seed_and_epoch_same_batches_including_augmentation():
    images = torch.randn(50, 1, 8, 8)
    labels = torch.arange(50) % 10

    def epoch_batches(seed, epoch):
        loader = Loader(images, labels, 8, augment=Augment(pad=2, erase=0.5), seed=seed)
        loader.set_epoch(epoch)
        return [x for x, _ in loader]

    a, b = epoch_batches(0, 1), epoch_batches(0, 1)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], epoch_batches(0, 2)[0])
    assert not torch.equal(a[0], epoch_batches(1, 1)[0])


def test_start_step_resumes_with_the_same_batches():
    images, labels = indexed(40, h=6, w=6)
    loader = Loader(images, labels, 6, augment=Augment(pad=1), seed=9)
    loader.set_epoch(3)
    full = list(loader)
    loader.set_epoch(3, start_step=4)
    tail = list(loader)
    assert len(tail) == len(full) - 4
    for (x, y), (u, v) in zip(full[4:], tail, strict=True):
        assert torch.equal(x, u) and torch.equal(y, v)


def test_output_layout_dtype_and_one_argument_augment():
    images, labels = indexed(10, c=3)
    loader = Loader(images, labels, 4, augment=lambda x: x * 2, shuffle=False)
    x, y = next(iter(loader))
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (4, 3, 4, 4)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert x[:, 0, 0, 0].tolist() == [0.0, 2.0, 4.0, 6.0]
    plain = Loader(images, labels, 4, channels_last=False, shuffle=False)
    assert next(iter(plain))[0].is_contiguous()


def test_bad_arguments():
    images, labels = indexed(4)
    with pytest.raises(DataError, match="float images"):
        Loader(images.byte(), labels, 2)
    with pytest.raises(DataError, match="rank 2"):
        Loader(images, labels, 2, rank=2, world_size=2)
    with pytest.raises(DataError, match="no sample"):
        Loader(images, labels, 2, world_size=5, drop_last=True)
    with pytest.raises(DataError, match="3 labels"):
        Loader(images, labels[:3], 2)


def test_from_imageset_normalizes_with_the_given_stats():
    from cnnlab.data import ImageSet

    ds = ImageSet(
        torch.full((6, 1, 2, 2), 51, dtype=torch.uint8), torch.zeros(6).long(), ("a",), "s"
    )
    x, _ = next(iter(Loader.from_imageset(ds, (0.1,), (0.5,), 6)))
    assert torch.allclose(x, torch.full_like(x, (0.2 - 0.1) / 0.5))
