"""Download the four official Fashion-MNIST files, checking each one's MD5 before keeping it.

Each file is streamed into a temporary file in the target directory, hashed on the way, fsynced
and renamed over its final name only when the checksum matches, so an interrupted or corrupt
download never leaves a file that looks complete; one cut off (fewer bytes than announced, or
a chunked reply that stops) is said as such. Not resumed: a file is fetched again whole.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from cnnlab.errors import DataError

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# MD5 of the official .gz files (zalandoresearch/fashion-mnist README; torchvision uses the same).
# Debian's dataset-fashion-mnist recompresses them, so its .gz files hash differently.
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

_CHUNK = 1 << 20


def md5_of(path: str | Path) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(url: str, dest: str | Path, md5: str | None = None, timeout: float = 60) -> Path:
    """Fetch `url` to `dest` atomically (temp file, fsync, rename), verifying `md5` if given."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise _cannot_write(dest.parent, e, "") from e
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch(url, out, dest, timeout)
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as e:
                raise _cannot_write(dest, e, "the partial file was discarded") from e
        if md5 is not None and digest != md5.lower():
            raise DataError(
                f"download of {url} is corrupt: MD5 {digest}, expected {md5}; "
                "the file was discarded; try again, or use another mirror (--url with cnnlab data)"
            )
        try:
            os.replace(tmp, dest)
        except OSError as e:  # dest is a directory, or the folder was made read-only
            raise _cannot_write(dest, e, "the complete download was discarded") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _fetch(url: str, out, dest: Path, timeout: float) -> str:
    """Stream `url` into `out`, hashing on the way; its hex MD5. DataError for a reply cut
    off, an HTTP error, no network, or a write that fails (said as a disk's, not a network's)."""
    h, got, expected = hashlib.md5(), 0, None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            expected = _length(response.headers.get("Content-Length"))
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                h.update(chunk)
                _write(out, chunk, dest)  # a disk error is no network error
                got += len(chunk)
    except http.client.IncompleteRead as e:  # a chunked reply cut off: a traceback
        raise _cut_off(url, got + len(e.partial), expected) from e
    except urllib.error.HTTPError as e:
        raise DataError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise DataError(
            f"download of {url} failed ({reason}); without a network, install "
            "`apt-get install dataset-fashion-mnist` or pass --data DIR"
        ) from e
    if expected is not None and got < expected:  # the connection closed early
        raise _cut_off(url, got, expected)
    return h.hexdigest()


def _write(out, chunk: bytes, dest: Path) -> None:
    try:
        out.write(chunk)
    except OSError as e:
        raise _cannot_write(dest, e, "the partial file was discarded") from e


def _elsewhere(where: str = "another directory") -> str:
    return f"download into {where} (cnnlab data fashion-mnist --download DIR)"


def _cannot_write(path: Path, error: OSError, discarded: str) -> DataError:
    """A failed write said as one, with the advice its errno calls for: a full disk was
    "download failed (No space left on device); without a network, install ...", a directory
    in the file's place IsADirectoryError as a traceback, and every one was told to free space,
    a read-only folder and a complete, checked file ("partial") too."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = f"free space there, or {_elsewhere()}"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = _elsewhere("a directory you can write to")
    elif error.errno == errno.EISDIR:
        advice = f"{path} is a directory: move it away, or {_elsewhere()}"
    else:
        advice = _elsewhere()
    said = f"{discarded}: " if discarded else ""
    return DataError(f"cannot write {path} ({error.strerror or error}); {said}{advice}")


def _length(header: str | None) -> int | None:
    """The Content-Length a server announced, None when it gave none (or no number)."""
    try:
        return int(header) if header is not None else None
    except ValueError:
        return None


def _cut_off(url: str, got: int, expected: int | None) -> DataError:
    """A reply that ended before its last byte: said as the interruption it is (it was a
    traceback for a chunked reply, and an MD5 mismatch, "corrupt", for one with a length)."""
    of = f" of {expected:,}" if expected is not None else ""
    return DataError(
        f"download of {url} was cut off after {got:,}{of} bytes; the partial file was "
        "discarded: run the command again (files already complete are kept)"
    )


def download_fashion_mnist(
    dest: str | Path,
    base_url: str = FASHION_MNIST_URL,
    *,
    checksums: dict[str, str] | None = None,
    timeout: float = 60,
) -> Path:
    """Download the four Fashion-MNIST `.gz` files from `base_url` into `dest`; returns `dest`.

    A file already present with the right MD5 is kept. `checksums` maps file name to MD5
    (default `FASHION_MNIST_MD5`, the official ones).
    """
    dest = Path(dest).expanduser()
    checksums = FASHION_MNIST_MD5 if checksums is None else checksums
    base = base_url if base_url.endswith("/") else base_url + "/"
    if urllib.parse.urlsplit(base).scheme.lower() not in ("http", "https", "ftp", "file"):
        raise DataError(  # was urllib's ValueError 'unknown url type' as a traceback
            f"--url {base_url!r} is not an http://, https://, ftp:// or file:// address; give "
            f"the mirror's base address, as the default {FASHION_MNIST_URL}"
        )
    for name, md5 in checksums.items():
        target = dest / name
        if target.is_file() and md5_of(target) == md5.lower():
            continue
        download_file(base + name, target, md5, timeout)
    return dest
