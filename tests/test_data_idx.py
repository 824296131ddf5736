"""IDX parsing and Fashion-MNIST lookup, against Debian's real files read directly with gzip +
numpy (independent truth) and against crafted broken files written with `struct`."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cnnlab.data import fashion as fashion_module
from cnnlab.data import fashion_mnist, load_dataset, read_idx, read_idx_labels, read_idx_pair
from cnnlab.data.fashion import FASHION_MNIST_CLASSES, find_fashion_mnist
from cnnlab.errors import DataError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "t10k-labels-idx1-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install it)",
)


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file written from the format description: magic, big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@needs_debian
@pytest.mark.parametrize(
    ("split", "n", "prefix"), [("train", 60000, "train"), ("test", 10000, "t10k")]
)
def test_debian_fashion_mnist_matches_direct_numpy_read(split, n, prefix):
    ds = fashion_mnist(split, root=DEBIAN)
    assert ds.images.shape == (n, 1, 28, 28) and len(ds.labels) == n
    assert ds.classes == FASHION_MNIST_CLASSES and ds.classes[9] == "Ankle boot"
    with gzip.open(DEBIAN / f"{prefix}-labels-idx1-ubyte.gz") as f:
        direct_labels = np.frombuffer(f.read()[8:], np.uint8)
    with gzip.open(DEBIAN / f"{prefix}-images-idx3-ubyte.gz") as f:
        direct_images = np.frombuffer(f.read()[16:], np.uint8).reshape(n, 28, 28)
    assert np.array_equal(ds.labels.numpy(), direct_labels)
    assert np.array_equal(ds.images[:100, 0].numpy(), direct_images[:100])
    assert ds.labels.min() == 0 and ds.labels.max() == 9
    assert ds.class_counts() == [n // 10] * 10  # Fashion-MNIST is exactly balanced


@needs_debian
def test_first_train_labels_are_the_published_ones():
    # Fashion-MNIST README / any direct read: ankle boot, T-shirt, T-shirt, dress, ...
    assert load_dataset("fashion-mnist").labels[:6].tolist() == [9, 0, 0, 3, 0, 2]


@settings(max_examples=30, deadline=None)
@given(
    array=arrays(np.uint8, st.tuples(st.integers(0, 5), st.integers(1, 4), st.integers(1, 4))),
    gz=st.booleans(),
)
def test_roundtrip_uint8_images(tmp_path_factory, array, gz):
    path = write(tmp_path_factory.mktemp("idx") / "x-idx3-ubyte", idx_bytes(array), gz)
    out = read_idx(path)
    assert out.shape == array.shape and np.array_equal(out, array)


@settings(max_examples=20, deadline=None)
@given(array=arrays(np.dtype(">i2"), st.tuples(st.integers(1, 6))))
def test_roundtrip_big_endian_int16(tmp_path_factory, array):
    path = write(tmp_path_factory.mktemp("idx") / "x.idx", idx_bytes(array, 0x0B))
    assert np.array_equal(read_idx(path), array.astype(np.int16))


def labels_file(tmp_path, labels, name="labels-idx1-ubyte"):
    return write(tmp_path / name, idx_bytes(np.asarray(labels, np.uint8)))


def images_file(tmp_path, n, name="images-idx3-ubyte", gz=False):
    return write(tmp_path / name, idx_bytes(np.zeros((n, 4, 4), np.uint8)), gz)


def test_bad_magic_names_the_file(tmp_path):
    path = write(tmp_path / "bad-idx3-ubyte", b"\x12\x34\x08\x03" + bytes(12))
    with pytest.raises(DataError, match="not an IDX file") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_labels_file_given_as_images_is_refused(tmp_path):
    path = labels_file(tmp_path, [1, 2, 3])
    with pytest.raises(DataError, match=r"not an IDX images file.*0x00000801") as e:
        read_idx_pair(path, path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file_is_reported(tmp_path, gz):
    full = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    path = write(tmp_path / "t-idx3-ubyte", full[:-5], gz)
    with pytest.raises(DataError, match="truncated") as e:
        read_idx(path)
    assert str(path) in str(e.value) and "43 follow" in str(e.value)


def test_truncated_header_is_reported(tmp_path):
    path = write(tmp_path / "h-idx3-ubyte", b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match="truncated.*header") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_trailing_bytes_are_corrupt(tmp_path):
    path = write(tmp_path / "x-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)) + b"junk")
    with pytest.raises(DataError, match="4 bytes after") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_corrupt_gzip_is_reported(tmp_path):
    data = bytearray(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8))))
    path = write(tmp_path / "c-idx1-ubyte.gz", bytes(data[: len(data) // 2]))
    with pytest.raises(DataError, match="corrupt or truncated gzip") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_count_mismatch_names_both_files(tmp_path):
    images, labels = images_file(tmp_path, 5), labels_file(tmp_path, [0, 1, 2, 3])
    with pytest.raises(DataError, match="5 images but .* 4 labels") as e:
        read_idx_pair(images, labels, 10)
    assert str(images) in str(e.value) and str(labels) in str(e.value)


def test_label_out_of_range(tmp_path):
    path = labels_file(tmp_path, [0, 9, 10, 3])
    with pytest.raises(DataError, match="label 10 at index 2 is out of range 0..9") as e:
        read_idx_labels(path, 10)
    assert str(path) in str(e.value)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such IDX file") as e:
        read_idx(tmp_path / "nope.gz")
    assert "nope.gz" in str(e.value)


def fake_fashion(directory: Path, n_train=6, n_test=4, gz=True) -> Path:
    """A tiny directory laid out like Fashion-MNIST (same names), labels 0..n-1."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.arange(n * 784, dtype=np.int64).reshape(n, 28, 28).astype(np.uint8)
        write(directory / f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(images), gz)
        labels = np.arange(n, dtype=np.uint8) % 10
        write(directory / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(labels), gz)
    return directory


@pytest.fixture
def no_default_dirs(monkeypatch, tmp_path):
    """Point the cache and system locations at empty directories, and unset $CNNLAB_DATA."""
    monkeypatch.setattr(fashion_module, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(fashion_module, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    return tmp_path


def test_not_found_lists_where_it_looked_and_how_to_get_it(no_default_dirs):
    with pytest.raises(DataError) as e:
        fashion_mnist("train")
    message = str(e.value)
    assert str(no_default_dirs / "cache") in message and str(no_default_dirs / "system") in message
    assert "apt-get install dataset-fashion-mnist" in message and "--data DIR" in message
    # `cnnlab train` has no --download: the message names the command that has one
    assert "`cnnlab data fashion-mnist --download DIR`" in message
    assert "download=True" not in message


def test_search_order_env_before_cache_before_system(no_default_dirs, monkeypatch):
    tmp = no_default_dirs
    fake_fashion(tmp / "system", n_train=3)
    assert len(fashion_mnist("train")) == 3
    fake_fashion(tmp / "cache", n_train=4, gz=False)  # raw files work as well as .gz
    assert len(fashion_mnist("train")) == 4
    fake_fashion(tmp / "env" / "fashion-mnist", n_train=5)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp / "env"))
    assert len(fashion_mnist("train")) == 5
    fake_fashion(tmp / "given", n_train=7)
    assert len(fashion_mnist("train", root=tmp / "given")) == 7
    assert len(load_dataset("fashion-mnist", "test", root=tmp / "given")) == 4


def test_explicit_root_without_files_is_an_error_not_a_fallback(no_default_dirs):
    fake_fashion(no_default_dirs / "system")
    with pytest.raises(DataError, match="not found; looked in: .*empty"):
        find_fashion_mnist("train", no_default_dirs / "empty")


def test_unknown_split(no_default_dirs):
    with pytest.raises(DataError, match="unknown split 'val'"):
        fashion_mnist("val")


@needs_debian
def test_conform_to_three_channels_and_32px():
    ds = load_dataset("fashion-mnist", "test", root=DEBIAN, channels=3, size=32)
    assert ds.images.shape == (10000, 3, 32, 32)
    assert (ds.images[:, 0] == ds.images[:, 2]).all()


def test_root_may_hold_a_fashion_mnist_subfolder(no_default_dirs):
    fake_fashion(no_default_dirs / "data" / "fashion-mnist", n_train=2)
    assert len(fashion_mnist("train", root=no_default_dirs / "data")) == 2


@settings(max_examples=200, deadline=None)
@given(
    type_code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]),
    ndim=st.integers(0, 4),
    body=st.binary(max_size=64),
)
def test_arbitrary_bytes_parse_or_raise_data_error(type_code, ndim, body):
    from cnnlab.data.idx import parse_idx

    data = bytes([0, 0, type_code, ndim]) + body
    try:
        array = parse_idx(data, "fuzz")
    except DataError as e:
        assert str(e).startswith("fuzz: ")
    else:  # accepted only when the header describes exactly the bytes that follow
        assert array.nbytes == len(data) - 4 - 4 * ndim


def test_a_directory_of_idx_files_is_fashion_mnist_not_an_image_folder(tmp_path):
    """The not-found error advises `--data DIR`; `load_dataset(DIR)` must then read the IDX
    files in DIR (the bytes written here), not look for class sub-folders."""
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    labels = np.array([9, 0, 4], dtype=np.uint8)
    write(tmp_path / "t10k-images-idx3-ubyte.gz", idx_bytes(images), gz=True)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(labels))
    ds = load_dataset(tmp_path, "test")
    assert ds.images.shape == (3, 1, 28, 28) and ds.images[:, 0].numpy().tolist() == images.tolist()
    assert ds.labels.tolist() == [9, 0, 4] and ds.classes == FASHION_MNIST_CLASSES
    with pytest.raises(DataError, match="train files"):  # the other split: the IDX error
        load_dataset(str(tmp_path), "train")


def test_files_not_found_name_each_commands_way_to_point_at_a_copy(no_default_dirs, capsys):
    """`cnnlab data fashion-mnist --root DIR` without the files was told to give --data DIR,
    an option the data command does not have; the advice followed must parse."""
    from cnnlab.cli import main

    empty = no_default_dirs / "empty"
    empty.mkdir()
    assert main(["data", "fashion-mnist", "--root", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "`cnnlab data fashion-mnist --root DIR`" in err and "--data DIR" in err
    assert err.count("\n") == 1
