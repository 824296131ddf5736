"""Batch augmentation properties (hypothesis), each checked image by image against plain torch
ops (F.pad + slicing, Tensor.flip) as the independent truth."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.data import Augment, erase, erase_masks, hflip, translate
from cnnlab.errors import DataError

batches = st.tuples(
    st.integers(1, 6), st.integers(1, 3), st.integers(3, 9), st.integers(3, 9), st.integers(0, 999)
)


def batch(b, c, h, w, seed):
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def gen(seed):
    return torch.Generator().manual_seed(seed)


def shifted(img, dy, dx, pad, mode):
    """One image moved by (dy, dx) with the given padding, by F.pad and a slice."""
    _, h, w = img.shape
    padded = F.pad(img[None], (pad,) * 4, mode="constant" if mode == "zeros" else mode)[0]
    return padded[:, pad + dy : pad + dy + h, pad + dx : pad + dx + w]


@settings(max_examples=40, deadline=None)
@given(shape=batches, pad=st.integers(1, 2), mode=st.sampled_from(["zeros", "reflect"]))
def test_translate_is_a_per_image_shift_within_pad(shape, pad, mode):
    x = batch(*shape)
    out = translate(x, pad, gen(shape[-1]), mode)
    assert out.shape == x.shape
    for img, o in zip(x, out, strict=True):
        shifts = [
            (dy, dx)
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
            if torch.equal(o, shifted(img, dy, dx, pad, mode))
        ]
        assert shifts, "output is not a translate of its input"


@settings(max_examples=20, deadline=None)
@given(shape=batches)
def test_translate_pad_zero_keeps_every_pixel(shape):
    x = batch(*shape)
    out = translate(x, 0, gen(1))
    assert torch.equal(out.flatten().sort().values, x.flatten().sort().values)


def test_translate_uses_all_shifts_and_is_seeded():
    x = torch.arange(64.0).view(1, 1, 8, 8).expand(200, 1, 8, 8)
    out = translate(x, 1, gen(3), "zeros")
    # the top-left output pixel tells the shift: 0 (padding), or pixel values 0, 1, 8, 9
    assert set(out[:, 0, 1, 1].tolist()) == {0.0, 1.0, 2.0, 8.0, 9.0, 10.0, 16.0, 17.0, 18.0}
    assert torch.equal(out, translate(x, 1, gen(3), "zeros"))
    assert not torch.equal(out, translate(x, 1, gen(4), "zeros"))


@settings(max_examples=30, deadline=None)
@given(shape=batches, p=st.floats(0, 1))
def test_hflip_twice_with_the_same_seed_is_identity(shape, p):
    x = batch(*shape)
    once = hflip(x, gen(7), p)
    for img, o in zip(x, once, strict=True):
        assert torch.equal(o, img) or torch.equal(o, img.flip(-1))
    assert torch.equal(hflip(once, gen(7), p), x)


def test_hflip_probability():
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(4000, 1, 1, 4)
    flipped = (hflip(x, gen(0), 0.25)[:, 0, 0, 0] == 3).float().mean()
    assert abs(flipped - 0.25) < 0.03


@settings(max_examples=40, deadline=None)
@given(shape=batches, p=st.floats(0, 1), value=st.floats(-2, 2))
def test_erase_changes_only_one_rectangle_per_image(shape, p, value):
    x = batch(*shape) + 10  # far from value, so every erased pixel shows
    out = erase(x, gen(shape[-1]), p=p, value=value)
    for img, o in zip(x, out, strict=True):
        changed = (o != img).any(0)  # (H, W)
        assert ((o != img) == changed).all()  # all channels or none
        if changed.any():
            rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
            box = changed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            assert box.all()  # the changed pixels fill their bounding box: a rectangle
            assert (o[:, changed] == value).all()


def test_erase_area_and_probability():
    masks = erase_masks((2000, 1, 32, 32), gen(0), p=0.5, scale=(0.02, 0.33))
    area = masks.flatten(1).sum(1).float() / (32 * 32)
    erased = area > 0
    assert abs(erased.float().mean() - 0.5) < 0.04
    assert area[erased].min() >= 0.005 and area[erased].max() <= 0.5
    assert 0.12 < area[erased].mean() < 0.2  # near the mean of U(0.02, 0.33)


def test_augment_is_deterministic_and_keeps_shape_and_channels_last():
    x = batch(16, 3, 12, 12, 0).contiguous(memory_format=torch.channels_last)
    aug = Augment(pad=2, flip=0.5, erase=0.5)
    a, b = aug(x, gen(5)), aug(x, gen(5))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(a, aug(x, gen(6)))
    assert a.is_contiguous(memory_format=torch.channels_last)


def test_translate_rejects_reflect_padding_larger_than_the_image():
    import pytest

    with pytest.raises(ValueError, match="reflect padding 4"):
        translate(torch.zeros(1, 1, 4, 4), 4, gen(0))


@pytest.mark.parametrize(
    "bad", [{"pad": -1}, {"pad": 1.5}, {"pad_mode": "wrap"}, {"flip": 2.0}, {"erase": -0.1}]
)
def test_augment_refuses_settings_that_would_pass_silently(bad):
    """erase=2 would mean "always", pad=-1 "off": both are typos, said at construction."""
    with pytest.raises(DataError, match="augment: "):
        Augment(**bad)
