"""An uploaded image file, checked before it is decoded, then read as training images are.

Limits (each refusal is an `UploadError` whose message says what is wrong and what to do):
- at most MAX_BYTES (10 MB) of file; an empty file is refused;
- a format an image folder reads (`data.image.IMAGE_FORMATS`: PNG, JPEG, BMP, WebP, TIFF, GIF,
  AVIF), recognised from the header bytes, not from the name;
- at most MAX_PIXELS (width × height, from the header, before any pixel is decoded): a small
  file that would expand to gigabytes (a decompression bomb) never reaches the decoder;
- the file is then read as predict, explain and training read image files
  (`cnnlab.train.evaluate.read_for_run`: the one guarded image reader's steps, decoded fully,
  so a truncated file is refused), converted to the run's channels and resized (cover,
  centre-crop, as the image-folder loader resizes) to its input size: one file, one answer;
- a file of many frames (an animated GIF, a multi-page TIFF) is read at its first frame, as
  those readers read it, and the answer says so (`frames_note`);
- the bytes are handed to the readers from memory (`_held`): no named file is left behind
  by a server that is killed.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings

import torch
from PIL import Image, UnidentifiedImageError

from cnnlab.data.image import IMAGE_FORMATS, frame_count, mode_change
from cnnlab.data.notes import channel_note
from cnnlab.data.notes import frames_note as file_frames_note
from cnnlab.errors import DataError
from cnnlab.train.evaluate import read_for_run

MAX_BYTES = 10 * 1024 * 1024  # 10 MB: a camera JPEG fits, a denial of service does not
MAX_PIXELS = 4096 * 4096  # 16.8 M pixels: 50 MB as RGB once decoded
# the formats training, predict and explain read, so an upload of what they read is read;
# Pillow names a camera's JPEG holding a second picture (MP data) MPO: a .jpg to a folder
FORMATS = (*dict.fromkeys(IMAGE_FORMATS.values()), "MPO")
# the upload input's `accept`, by extension: the page lists in its file chooser exactly the
# files the server reads (a hard-coded list of MIME types hid .tif, .gif and .avif)
ACCEPT = ",".join(IMAGE_FORMATS)
# the formats as people name them (WebP, not Pillow's WEBP; MPO is a JPEG)
FORMAT_NAMES = tuple({"WEBP": "WebP"}.get(f, f) for f in FORMATS if f != "MPO")


class UploadError(DataError):
    """An upload the explorer refuses; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def check_header(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) from the header of an image file's bytes; UploadError if the file is
    empty, too large, not one of FORMATS, or has more than MAX_PIXELS pixels."""
    if not data:
        raise UploadError(f"{name} is empty (0 bytes): choose a PNG or JPEG image")
    if len(data) > MAX_BYTES:  # the caller reads one byte past the limit, not the whole file
        raise UploadError(
            f"{name} is over {MAX_BYTES // 2**20} MiB, the largest image the explorer takes: "
            "resize or compress it",
            status=413,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:  # reads the header only
                fmt, (w, h) = img.format, img.size
    except UnidentifiedImageError:
        fmt, w, h = None, 0, 0
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise UploadError(f"{name} is too many pixels to decode safely ({error})", 413) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise UploadError(f"{name} is not a readable image ({error})") from None
    if fmt not in FORMATS:
        raise UploadError(
            f"{name} is not a {_named(FORMAT_NAMES)} image (its bytes are no image format "
            "the explorer reads): choose an image file"
        )
    if w * h > MAX_PIXELS:
        raise UploadError(
            f"{name} is {h}×{w} (H×W) = {w * h / 1e6:.0f} M pixels; the explorer decodes at most "
            f"{MAX_PIXELS / 1e6:.1f} M (a guard against decompression bombs): downscale it",
            status=413,
        )
    return w, h


def _named(names: tuple[str, ...]) -> str:
    """The format names as a phrase: PNG, JPEG, ... or AVIF."""
    return ", ".join(names[:-1]) + " or " + names[-1]


def colour_note(data: bytes, name: str, channels: int) -> str:
    """`data.notes.channel_note` of the upload (predict's words for a file): the answer is
    for the converted image, which the page shows. `data` has passed `check_header`."""
    return channel_note([(name, mode_change(io.BytesIO(data), channels))], channels)


def frames_note(data: bytes, name: str) -> str:
    """`data.notes.frames_note` of the upload (predict's words for a file): the answer is for
    its first frame only, as every reader takes it. `data` has passed `check_header`."""
    return file_frames_note([(name, frame_count(io.BytesIO(data)))])


@contextlib.contextmanager
def _held(data: bytes):
    """A path to `data` for the image readers (they take paths) that leaves nothing behind:
    an anonymous memory file (memfd, Linux) read through /proc/self/fd, freed with its
    descriptor or with the process however it ends (a temporary file outlived a killed
    server); elsewhere a temporary file removed after the read."""
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        with _written(data) as path:
            yield path
        return
    fd = os.memfd_create("cnnlab-upload", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "wb") as file:
            file.write(data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


@contextlib.contextmanager
def _written(data: bytes):
    """A temporary file holding `data`, removed after (where there is no memfd)."""
    fd, path = tempfile.mkstemp(prefix="cnnlab-upload-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        yield path
    finally:
        os.unlink(path)


def _check_cover(name: str, size: tuple[int, int], target: tuple[int, int]) -> None:
    """UploadError 413 when resizing an (H, W) image to cover `target` (the loader's cover,
    then centre crop) makes more than MAX_PIXELS: a 467-byte 1×400,000 PNG became a
    28×11,200,000 image on the way to 28×28, 1.9 GB and 3 s for one request."""
    (h, w), (th, tw) = size, target
    scale = max(th / h, tw / w)
    rh, rw = max(th, round(h * scale)), max(tw, round(w * scale))
    if rh * rw > MAX_PIXELS:
        raise UploadError(
            f"{name} is {h}×{w} (H×W): covering the run's {th}×{tw} input would first resize "
            f"it to {rh:,}×{rw:,} pixels, more than the {MAX_PIXELS / 1e6:.1f} M the explorer "
            "decodes: crop it closer to its object",
            status=413,
        )


def read_upload(
    data: bytes, name: str, shape: tuple[int, int, int]
) -> tuple[torch.Tensor, tuple[int, int]]:
    """The uploaded bytes as uint8 (1, C, H, W) for a model of input `shape` (C, H, W), read
    as predict reads a file (`read_for_run`), and the upload's own (H, W)."""
    w, h = check_header(data, name)
    _check_cover(name, (h, w), shape[1:])
    with _held(data) as path:
        try:
            pixels, (size,) = read_for_run([path], shape)
        except DataError as error:  # say the upload's name, not the temporary file's
            raise UploadError(str(error).replace(path, name)) from None
    return pixels, size
