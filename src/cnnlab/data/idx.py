"""IDX files (the MNIST / Fashion-MNIST format), raw or gzip-compressed, fully validated.

Layout (LeCun's MNIST page): a 4-byte magic `00 00 TT DD` (TT = element type, DD = number of
dimensions), then DD big-endian uint32 sizes, then the elements in C order, big-endian.
Labels are `00 00 08 01` (N,), images `00 00 08 03` (N, H, W), both unsigned bytes.
Every check raises `DataError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from cnnlab.data.image import check_regular_file
from cnnlab.errors import DataError

# element-type byte -> big-endian numpy dtype
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803
_GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 2**30  # 1 GiB; Fashion-MNIST's largest file holds 47 MB


def read_bytes(path: str | Path, limit: int = MAX_IDX_BYTES) -> bytes | bytearray:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name).

    Bounded: a regular file only (a named pipe would block), and never more than the IDX
    header declares (plus one byte, to see data after it) nor more than `limit` bytes, so a
    small .gz that inflates to gigabytes is refused after reading its header, not after
    inflating it. Malformed headers are returned short for `parse_idx` to name the fault.
    """
    path = Path(path)
    check_regular_file(path, "IDX file")
    try:
        with open(path, "rb") as raw:
            packed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if not packed:
                size = os.fstat(raw.fileno()).st_size
                if size > limit:
                    raise DataError(
                        f"{path}: {size:,} bytes is more than the {limit:,} an IDX file may "
                        "hold here (limit=...)"
                    )
                return raw.read()
            with gzip.GzipFile(fileobj=raw) as stream:
                return _read_declared(stream, path, limit)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(
            f"{path}: corrupt or truncated gzip data ({e}); delete it and fetch it again"
        ) from e
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e


def _read_declared(stream, path: Path, limit: int) -> bytes | bytearray:
    """Read an IDX header from `stream`, then exactly the data it declares, in one buffer."""
    head = stream.read(4)
    if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in IDX_TYPES or head[3] == 0:
        return head  # not an IDX header: parse_idx says which fault
    head += stream.read(4 * head[3])
    if len(head) < 4 + 4 * head[3]:
        return head  # truncated header
    dims = tuple(int(d) for d in np.frombuffer(head, dtype=">u4", offset=4))
    total = len(head) + math.prod(dims) * IDX_TYPES[head[2]].itemsize
    if total > limit:
        raise DataError(
            f"{path}: its IDX header declares {'×'.join(map(str, dims))} ({total:,} bytes), "
            f"more than the {limit:,} cnnlab reads; the header is corrupt or the file is not "
            "a data set (a decompression bomb)"
        )
    buffer = bytearray(total + 1)  # one byte more than declared shows trailing data
    buffer[: len(head)] = head
    view, filled = memoryview(buffer), len(head)
    while filled < len(buffer):
        n = stream.readinto(view[filled:])
        if not n:
            break
        filled += n
    view.release()
    if filled > total:
        raise DataError(
            f"{path}: corrupt IDX file: its data continues after the "
            f"{'×'.join(map(str, dims))} the header declares"
        )
    del buffer[filled:]
    return buffer


def parse_idx(data: bytes | bytearray, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX `data` into an array of the declared type and shape (native byte order).

    Checks: the two zero bytes and a known type byte, the header length, and that the payload
    is exactly `prod(dims) * itemsize` bytes (shorter: truncated; longer: trailing garbage).
    """
    if len(data) < 4:
        raise DataError(f"{name}: truncated IDX file ({len(data)} bytes, header needs 4)")
    zero, dtype_code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype_code not in IDX_TYPES:
        raise DataError(
            f"{name}: not an IDX file (magic 0x{data[:4].hex()}, expected 0x0000TTDD with "
            f"type TT in {sorted(hex(t) for t in IDX_TYPES)})"
        )
    if ndim == 0:
        raise DataError(f"{name}: corrupt IDX header (0 dimensions)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{name}: truncated IDX file ({len(data)} bytes, header of {ndim} dims needs {header})"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[dtype_code]
    expected = math.prod(dims) * dtype.itemsize  # exact Python int: no overflow
    got = len(data) - header
    if got < expected:
        raise DataError(
            f"{name}: truncated IDX file: header says {'×'.join(map(str, dims))} "
            f"({expected} data bytes) but only {got} follow; fetch the file again"
        )
    if got > expected:
        raise DataError(
            f"{name}: corrupt IDX file: {got - expected} bytes after the "
            f"{'×'.join(map(str, dims))} data the header declares"
        )
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return array.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | Path) -> np.ndarray:
    """Read any IDX file (raw or .gz) into a numpy array of its declared type and shape."""
    return parse_idx(read_bytes(path), str(path))


def _expect_magic(data: bytes, magic: int, what: str, name: str) -> None:
    got = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if got != magic:
        shown = f"0x{got:08x}" if got is not None else f"{len(data)} bytes"
        raise DataError(
            f"{name}: not an IDX {what} file (magic {shown}, expected 0x{magic:08x}: "
            f"unsigned bytes, {magic & 0xFF} dims)"
        )


def read_idx_images(path: str | Path) -> np.ndarray:
    """Images `(N, H, W)` uint8 from an IDX image file (magic 0x00000803)."""
    data = read_bytes(path)
    _expect_magic(data, IMAGES_MAGIC, "images", str(path))
    return parse_idx(data, str(path))


def read_idx_labels(path: str | Path, num_classes: int | None = None) -> np.ndarray:
    """Labels `(N,)` int64 from an IDX label file (magic 0x00000801), checked `< num_classes`."""
    data = read_bytes(path)
    _expect_magic(data, LABELS_MAGIC, "labels", str(path))
    labels = parse_idx(data, str(path)).astype(np.int64)
    if num_classes is not None and len(labels) and int(labels.max()) >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise DataError(
            f"{path}: label {int(labels[bad])} at index {bad} is out of range "
            f"0..{num_classes - 1}; the file is corrupt or not from this data set"
        )
    return labels


def read_idx_pair(
    images_path: str | Path, labels_path: str | Path, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`(images (N, H, W) uint8, labels (N,) int64)`, checking both files hold the same N."""
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path, num_classes)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels; the pair does not belong together"
        )
    return images, labels
