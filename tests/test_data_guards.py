"""The data layer under hostile input: decompression bombs (PNG and gzip), named pipes, broken
test splits, one-class folders, folder names that are not UTF-8, and the consistency of the
two splits of one folder. Truths: Pillow's header parse, gzip/zlib, the sizes written here."""

import gzip
import json
import os
import struct
import threading
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import (
    MAX_IMAGE_PIXELS,
    image_folder,
    load_splits,
    open_image,
    read_idx,
    read_image,
    read_images,
)
from cnnlab.data.idx import MAX_IDX_BYTES, parse_idx
from cnnlab.data.image import TooLarge
from cnnlab.errors import DataError


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width×height gray pixels, with a few bytes of pixel data:
    what a decompression bomb looks like before anything is inflated."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    idat = zlib.compress(bytes(1 + width) * 4)  # four rows of zeros
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def gray_png(path: Path, value: int = 0, size: int = 8, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size) if mode == "L" else (size, size, 3)
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)
    return path


# --- decompression bombs ------------------------------------------------------------------


@pytest.mark.parametrize("side", [10_000, 20_000])  # Pillow: a warning at 10k², an error at 20k²
def test_image_bomb_is_a_data_error_naming_file_and_limit(tmp_path, side):
    bomb = png_header_only(tmp_path / "bomb.png", side, side)
    for read in (lambda: read_image(bomb, 1), lambda: read_images([bomb], 3, (8, 8))):
        with pytest.raises(DataError) as info:
            read()
        message = str(info.value)
        assert str(bomb) in message and f"{MAX_IMAGE_PIXELS:,}" in message
        assert "\n" not in message


def test_bomb_in_a_folder_is_skipped_with_its_reason_or_fatal_when_strict(tmp_path):
    gray_png(tmp_path / "a" / "1.png")
    gray_png(tmp_path / "b" / "2.png")
    png_header_only(tmp_path / "b" / "bomb.png", 10_000, 10_000)
    ds = image_folder(tmp_path)
    assert len(ds) == 2
    [(path, reason)] = ds.skipped
    assert path.endswith("bomb.png") and "10000×10000" in reason
    with pytest.raises(DataError, match="bomb.png.*10000×10000"):
        image_folder(tmp_path, strict=True)


def test_pixel_limit_is_exact():
    """A header of exactly the limit is read; one pixel more is refused (the header's own
    numbers, so no bomb has to be decoded to test the boundary)."""
    from cnnlab.data.image import _check_pixels

    _check_pixels(Path("x.png"), (MAX_IMAGE_PIXELS, 1), MAX_IMAGE_PIXELS)
    with pytest.raises(DataError, match="more than"):
        _check_pixels(Path("x.png"), (MAX_IMAGE_PIXELS + 1, 1), MAX_IMAGE_PIXELS)


# An image above the pixel limit is a `TooLarge` naming the file once: the reader's own error
# was caught by its catch-all for Pillow's failures (DataError is a ValueError) and re-wrapped
# as "bomb.png: not a readable image (bomb.png: ...)", losing its type.


def test_a_bomb_is_too_large_and_names_the_file_once(tmp_path):
    bomb = png_header_only(tmp_path / "bomb.png", 10_000, 10_000)
    assert Image.open(bomb).size == (10_000, 10_000)  # Pillow reads the header as declared
    assert 10_000 * 10_000 > MAX_IMAGE_PIXELS
    with pytest.raises(TooLarge) as error:
        open_image(bomb)
    assert str(error.value).count(str(bomb)) == 1
    assert "not a readable image" not in str(error.value)


def idx_header(dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """A .gz whose header declares 10×28×28 but which inflates to 256 MB: the error comes
    after reading what the header declares; Python's allocations stay far below 256 MB."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    zeros = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(idx_header((10, 28, 28)))
        for _ in range(256):
            out.write(zeros)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"data continues after the 10×28×28"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.0f} MB"


def test_declared_size_above_the_limit_is_refused_from_the_header(tmp_path):
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(idx_header((100_000, 2_000, 2_000)) + bytes(10)))
    with pytest.raises(DataError, match=rf"100000×2000×2000.*more than the {MAX_IDX_BYTES:,}"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00",
        b"\x00\x00\x08\x02\x00\x00",
        idx_header((2, 3)) + bytes(6),
        idx_header((2, 3)) + bytes(5),
        idx_header((2, 3)) + bytes(9),
        b"\x12\x34\x08\x01" + bytes(8),
        idx_header((0, 4)),
    ],
)
def test_bounded_reader_agrees_with_parsing_the_whole_file(tmp_path, data, gz):
    """Truth: parse_idx over the whole (gunzipped) bytes; the bounded reader gives the same
    array or a DataError naming the file."""
    path = tmp_path / "x.idx"
    path.write_bytes(gzip.compress(data) if gz else data)
    try:
        expected = parse_idx(data, str(path))
    except DataError:
        with pytest.raises(DataError, match=str(path)):
            read_idx(path)
    else:
        assert np.array_equal(read_idx(path), expected)


@settings(max_examples=60, deadline=None)
@given(
    type_code=st.sampled_from([0x08, 0x09, 0x0B, 0x0D, 0x42]),
    dims=st.lists(st.integers(0, 4), min_size=0, max_size=3),
    extra=st.integers(-3, 3),
    gz=st.booleans(),
)
def test_bounded_reader_agrees_on_random_headers(tmp_path_factory, type_code, dims, extra, gz):
    """Property: for any header and a payload a few bytes off what it declares, the bounded
    reader and parse_idx over the whole bytes agree (truth: gzip and parse_idx)."""
    itemsize = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0D: 4}.get(type_code, 1)
    header = bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    size = max(0, int(np.prod(dims)) * itemsize + extra) if dims else max(0, extra)
    data = header + bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path_factory.mktemp("idx") / "x.idx"
    path.write_bytes(gzip.compress(data) if gz else data)
    try:
        expected = parse_idx(data, str(path))
    except DataError:
        with pytest.raises(DataError, match=str(path)):
            read_idx(path)
    else:
        assert np.array_equal(read_idx(path), expected)


# --- files that are not regular files -----------------------------------------------------


@pytest.fixture
def fifo(tmp_path):
    """A named pipe; a thread opens its write end after 3 s so that a reader that wrongly
    opens it fails the test instead of hanging it."""
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    done = threading.Event()

    def unblock():
        if not done.wait(3):
            with open(path, "wb"):
                pass

    thread = threading.Thread(target=unblock, daemon=True)
    thread.start()
    yield path
    done.set()
    thread.join()


def test_named_pipe_is_refused_as_image(fifo):
    with pytest.raises(DataError, match=r"pipe.png: is a named pipe, not a regular image file"):
        read_image(fifo, 1)


def test_named_pipe_is_refused_as_idx(fifo):
    with pytest.raises(DataError, match=r"pipe.png: is a named pipe, not a regular IDX file"):
        read_idx(fifo)


def test_directory_and_missing_file_are_named(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        open_image(tmp_path)
    with pytest.raises(DataError, match="no such image file"):
        open_image(tmp_path / "absent.png")


# A folder given where an image file is expected is refused with the fix that works (its
# files, `DIR/*`), and the advice for a non-regular IDX file is not 'give an image file'.


def test_a_directory_given_as_an_image_names_its_files(tmp_path):
    assert tmp_path.is_dir()
    with pytest.raises(DataError, match=r"is a directory, not a regular image file") as error:
        read_image(tmp_path, 1)
    assert str(error.value).endswith(f"give the files in it ({tmp_path / '*'})")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_given_as_an_idx_file_is_told_to_give_an_idx_file(tmp_path):
    os.mkfifo(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(DataError) as error:
        read_idx(tmp_path / "train-images-idx3-ubyte")
    assert str(error.value).endswith("give an IDX file") and "image file" not in str(error.value)


# --- the two splits of one data set -------------------------------------------------------


def fashion_dir(tmp_path: Path, test_labels=(1, 2), test_images=None) -> Path:
    """A Fashion-MNIST directory written as raw IDX files (4 train, 2 test images)."""

    def idx(name: str, array: np.ndarray) -> None:
        (tmp_path / name).write_bytes(idx_header(array.shape) + array.tobytes())

    idx("train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    idx("train-labels-idx1-ubyte", np.array([0, 1, 2, 3], np.uint8))
    images = np.zeros((2, 28, 28), np.uint8) if test_images is None else test_images
    if images is not False:
        idx("t10k-images-idx3-ubyte", images)
    idx("t10k-labels-idx1-ubyte", np.array(test_labels, np.uint8))
    return tmp_path


BROKEN_TEST_SPLITS = {
    "label out of range": (lambda d: fashion_dir(d, test_labels=(1, 12)), "label 12"),
    "missing test images": (lambda d: fashion_dir(d, test_images=False), "test files"),
    "truncated test images": (
        lambda d: fashion_dir(d, test_images=np.zeros((2, 28, 27), np.uint8)),
        "t10k-images",
    ),
    "count mismatch": (
        lambda d: fashion_dir(d, test_images=np.zeros((3, 28, 28), np.uint8)),
        "3 images but",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_TEST_SPLITS))
def test_broken_fashion_test_split_is_an_error_not_silence(tmp_path, case):
    make, words = BROKEN_TEST_SPLITS[case]
    directory = make(tmp_path)
    if case == "truncated test images":  # cut the last bytes off a well-formed file
        path = directory / "t10k-images-idx3-ubyte"
        data = idx_header((2, 28, 28)) + bytes(2 * 28 * 28)
        path.write_bytes(data[:-100])
    with pytest.raises(DataError, match=words):
        load_splits(directory)


def test_test_class_missing_from_train_is_an_error(tmp_path):
    for split, cls in (("train", "a"), ("train", "b"), ("test", "a"), ("test", "zebra")):
        gray_png(tmp_path / split / cls / "1.png")
    with pytest.raises(DataError, match=r"\['zebra'\] are not in"):
        load_splits(tmp_path)


def test_corrupt_test_folder_is_an_error(tmp_path):
    for cls in ("a", "b"):
        gray_png(tmp_path / "train" / cls / "1.png")
        (tmp_path / "test" / cls).mkdir(parents=True)
        (tmp_path / "test" / cls / "1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="no readable image for split 'test'"):
        load_splits(tmp_path)


def test_tiny_holdout_folder_has_no_test_split_and_says_so(tmp_path, capsys):
    for cls in ("a", "b"):
        for i in range(2):  # round(0.2 * 2) = 0 held out per class
            gray_png(tmp_path / cls / f"{i}.png", i)
    train, test = load_splits(tmp_path)
    assert len(train) == 4 and test is None
    assert main(["data", str(tmp_path)]) == 0
    assert "no test split" in capsys.readouterr().out


def test_splits_of_one_folder_share_channels_and_size(tmp_path, capsys):
    """image_folder decides channels per call: train has an RGB image, test only gray."""
    gray_png(tmp_path / "train" / "a" / "1.png", 5, mode="RGB")
    gray_png(tmp_path / "train" / "b" / "2.png", 9)
    gray_png(tmp_path / "test" / "a" / "3.png", 7)
    gray_png(tmp_path / "test" / "b" / "4.png", 1, size=10)  # another size too
    assert image_folder(tmp_path, split="test", size=8).shape == (1, 8, 8)  # the trap
    train, test = load_splits(tmp_path)
    assert train.shape == test.shape == (3, 8, 8)
    assert main(["data", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["train"]["shape"] == info["test"]["shape"] == [3, 8, 8]


def test_one_class_folder_is_an_error(tmp_path):
    for i in range(5):
        gray_png(tmp_path / "only" / f"{i}.png", i)
    with pytest.raises(DataError, match=r"only one class \('only'\).*at least two"):
        load_splits(tmp_path)


# A folder that wraps the class folders one level down (`data/photos/{cat,dog}` given as
# `data`) reads as one class: the error names the directory to give, and comes before any
# image is decoded (mixed sizes raised the size error first, hiding it).


def test_a_wrapper_folder_names_the_folder_of_classes(tmp_path):
    for cls, side in (("cat", 8), ("dog", 10)):  # two sizes: no size given is an error too
        for i in range(3):
            gray_png(tmp_path / "data" / "photos" / cls / f"{i}.png", size=side)
    with pytest.raises(DataError, match="only one class") as error:
        load_splits(tmp_path / "data")
    assert f"sub-folders of {tmp_path / 'data' / 'photos'}: give that directory" in str(error.value)
    train, test = load_splits(tmp_path / "data" / "photos", size=8)
    assert train.classes == ("cat", "dog") and test is not None


def test_one_real_class_keeps_the_advice_to_add_classes(tmp_path):
    for i in range(3):
        gray_png(tmp_path / "data" / "cat" / "sub" / f"{i}.png", size=8)
    with pytest.raises(DataError, match="add a sub-folder of images for each other class"):
        load_splits(tmp_path / "data")


def test_size_the_error_suggests_is_an_option_of_cnnlab_data(tmp_path, capsys):
    gray_png(tmp_path / "a" / "1.png", size=8)
    gray_png(tmp_path / "a" / "2.png", size=10)
    gray_png(tmp_path / "b" / "3.png", size=8)
    with pytest.raises(DataError) as info:
        image_folder(tmp_path)
    assert "cnnlab data DIR --size 28" in str(info.value)
    assert main(["data", str(tmp_path), "--size", "6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["shape"][1:] == [6, 6]


def test_non_utf8_class_folder_is_named_printably(tmp_path, capsys):
    name = os.fsdecode(b"caf\xe9")  # Latin-1 bytes: not UTF-8
    try:
        gray_png(tmp_path / name / "1.png")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    gray_png(tmp_path / "plain" / "2.png")
    ds = image_folder(tmp_path)
    assert ds.classes == ("caf\\xe9", "plain")
    json.dumps(ds.classes).encode("utf-8")  # config.json and the report can hold it
    "".join(ds.classes).encode("utf-8")
    assert main(["data", str(tmp_path), "--json"]) == 0
    assert "caf\\\\xe9" in capsys.readouterr().out
