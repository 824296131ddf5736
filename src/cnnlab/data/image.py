"""The one image-file reader of cnnlab: training folders, predict, explain and visualize all
read files through `open_image` / `read_image`, so one file gives one tensor everywhere.

Guards, each a `DataError` naming the file:
- only regular files are opened (a named pipe or a device would block or never end);
- at most `MAX_IMAGE_PIXELS` pixels (width × height, read from the header before any pixel is
  decoded): a 10,000×10,000 PNG of a few kB would otherwise inflate to 300 MB per copy
  (a decompression bomb); Pillow's own bomb error and warning become the same message;
- corrupt or truncated data is found here (the image is decoded fully);
- a black drawing on a transparent background (blank over black, where alpha is put) is
  refused, with the fix.

Conversions (what a model trained on an image folder saw): EXIF orientation applied; palette
expanded (to gray when every colour it uses is gray); alpha (or a PNG's transparent colour)
composited over black; 16-bit or float gray scaled to 8 bits (÷257, or from [0, 1] floats;
values in no such range, NaN or infinite are refused); RGB→L is ITU-R 601-2 luma.
`size=(H, W)` resizes to cover it with the aspect ratio kept (bilinear, Pillow's
antialiasing: `imageset.resize_crop`'s policy for tensors, to one grey level) and
center-crops: no stretching.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError

from cnnlab.data.imageset import FLOAT_SLACK
from cnnlab.errors import DataError

MAX_IMAGE_PIXELS = 64 * 2**20  # 8192×8192; 3 bytes each is 192 MB per decoded copy
# Every format of photos and scans Pillow decodes: a folder's .tif or .gif images were
# ignored unnamed while `predict` read the same files. HEIC and camera raw files are listed
# too, so a folder names them as skipped (no Pillow decoder) instead of dropping them unseen.
# Each extension with the Pillow format its files hold: folders pick files by the extension,
# the explorer's upload (no usable name) checks the format in the header; one list for both.
IMAGE_FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG",
    ".bmp": "BMP", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF",
    ".avif": "AVIF",
}  # fmt: skip
IMAGE_EXTENSIONS = tuple(IMAGE_FORMATS)
UNDECODED_EXTENSIONS = (".heic", ".heif", ".dng", ".cr2", ".nef", ".arw")
_ALPHA_MODES = ("RGBA", "LA", "La", "RGBa", "PA")
_DEEP_GRAY_MODES = ("I", "I;16", "I;16B", "I;16L", "F")
FRAMES = "cnnlab.frames"  # the key of open_image's info holding the file's frame count
_FIT_GROWTH = 4  # fit resizes the whole image while that is at most 4× the image or target


class TooLarge(DataError):
    """An image with more pixels than the limit (a decompression bomb or a huge scan)."""


class NotAnImage(DataError):
    """A file in no image format Pillow knows; `reason` says so without the path (a folder
    lists many such files)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.reason = reason


def check_regular_file(path: Path, what: str = "file") -> None:
    """DataError unless `path` is an existing regular file (following symlinks)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():  # the link is there, what it names is not
            # bytes that are not UTF-8 as \xe9 (data.folder.shown): printed, not re-emitted raw
            target = os.fsencode(os.readlink(path)).decode("utf-8", "backslashreplace")
            raise DataError(
                f"{path}: a symbolic link to {target}, which does not exist; "
                "mount or copy what it links to, or remove the link"
            ) from None
        raise DataError(f"{path}: no such {what}") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from error
    if not stat.S_ISREG(mode):
        kind = (
            "a directory"
            if stat.S_ISDIR(mode)
            else "a named pipe"
            if stat.S_ISFIFO(mode)
            else "a device or socket"
        )
        article = "an" if what[0] in "aeiouAEIOU" else "a"  # an image file, an IDX file
        fix = (
            f"give the files in it ({path / '*'})"
            if stat.S_ISDIR(mode)
            else f"give {article} {what}"
        )
        raise DataError(f"{path}: is {kind}, not a regular {what}; {fix}")


def frame_count(path: str | Path | BinaryIO) -> int:
    """How many frames an image file holds (an animated GIF, WebP or PNG, a multi-page TIFF:
    more than 1; Pillow walks the headers, not the pixels), 1 for a file Pillow cannot open:
    `open_image` says what is wrong with it. A camera's MPO JPEG is 1: its first image is
    the photo, the others a preview, a depth map or a stereo pair's other eye (each photo
    of such a camera was said to be "an animation or pages" read at its first frame)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return _frames(img)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return 1


def _frames(img: Image.Image) -> int:
    """`frame_count` of an opened image (before its pixels are loaded)."""
    return 1 if img.format == "MPO" else int(getattr(img, "n_frames", 1))


def open_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode an image file fully (so truncation shows up here), upright (EXIF), palette
    expanded; its `info[FRAMES]` is the file's `frame_count` (from this one opening: a
    folder notes the files read at their first frame, and opening each again cost 40% of
    reading 2,000 small PNGs). DataError (`TooLarge` for the pixel limit) naming the file on
    any failure."""
    path = Path(path).expanduser()
    check_regular_file(path, "image file")
    try:
        with warnings.catch_warnings():
            # Pillow warns at open above its own limit; ours (lower) is checked just after
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # a camera's EXIF with a bad sub-block: the orientation is still read, and the
            # warning printed two lines of Pillow's source under predict's answer
            warnings.filterwarnings("ignore", "Corrupt EXIF data", UserWarning)
            with Image.open(path) as img:
                _check_pixels(path, img.size, max_pixels)
                frames = _frames(img)  # a GIF's count walks its frames, then seeks back
                img.load()
                upright = ImageOps.exif_transpose(img)  # camera JPEGs store rotation in EXIF
                if upright.mode == "P":  # palette: expand, keeping transparency if it has one
                    out = upright.convert(palette_mode(upright))
                else:
                    out = keyed_alpha(upright.copy() if upright is img else upright)
                out.info[FRAMES] = frames
                _check_visible(path, out)
                _check_levels(path, out)
                return out
    except DataError:  # ours (TooLarge), raised inside: a ValueError the next clauses re-wrapped
        raise
    except Image.DecompressionBombError as error:  # refused by Pillow before we see the size
        raise TooLarge(f"{path}: {error}; cnnlab reads at most {max_pixels:,} pixels") from None
    except UnidentifiedImageError:  # no image format recognised: say what the file is
        raise NotAnImage(path, not_an_image(path)) from None
    except (OSError, SyntaxError, ValueError, MemoryError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from error


_LFS_POINTER = b"version https://git-lfs.github.com/spec/"
_TEXT_SHOWN = 40  # characters of a text file's start shown (an HTML error page names itself)


def not_an_image(path: Path) -> str:
    """Why a file no image format recognises is none: a phone's HEIC or a camera's raw file
    by its name (`predict RUN IMG_0001.HEIC` said only "no image format PIL knows"), else
    from its first bytes: empty (a copy or a sync that never finished), a Git LFS pointer
    (a repository cloned without its images: every file of a folder is one), text (an
    error page saved under an image's name, which its start shows), else no format Pillow
    knows."""
    if path.suffix.lower() in UNDECODED_EXTENSIONS:  # as a folder names them skipped
        kind = path.suffix[1:].upper()
        return (
            f"not a readable image: {kind} is no format Pillow decodes; convert it to PNG or JPEG"
        )
    try:
        with open(path, "rb") as file:
            head = file.read(512)
    except OSError:
        head = b"\0"  # unreadable now: the generic reason
    if not head:
        return "not a readable image: the file is empty (0 bytes); copy or download it again"
    if head.startswith(_LFS_POINTER):
        return (
            "not a readable image: a Git LFS pointer (a small text file) in place of the image; "
            "fetch the images with `git lfs pull` in its repository"
        )
    generic = "not a readable image (no image format PIL knows)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:  # a character cut at the 512th byte is still text
        if error.start < len(head) - 3:
            return generic
        text = head[: error.start].decode("utf-8")
    if not text.strip() or not all(c.isprintable() or c.isspace() for c in text):
        return generic
    start = " ".join(text.split())[:_TEXT_SHOWN]
    return f"{generic}: it is text, beginning {start!r}"


_KEYED_MODES = {"1": "LA", "L": "LA", "RGB": "RGBA"}  # with a tRNS colour: their alpha mode


def keyed_alpha(img: Image.Image) -> Image.Image:
    """A gray or RGB image whose file names one colour transparent (a PNG's tRNS chunk: what
    optipng and oxipng make of RGBA whose alpha is only 0 and 255) with that alpha band, as
    a palette's transparent entry is expanded: the colour showed where it is transparent, so
    an optimised icon read otherwise than its original. 16-bit gray (no mode holds it with
    alpha) has the keyed pixels set to 0, what over black makes of them. `img` itself when
    no pixel has the colour."""
    key = img.info.get("transparency")
    if key is None or isinstance(key, bytes):  # bytes: a palette's alphas (expanded apart)
        return img
    if img.mode.startswith("I;16"):
        a = np.asarray(img)
        keyed = a == key
        return Image.fromarray(np.where(keyed, 0, a).astype(a.dtype)) if keyed.any() else img
    if img.mode not in _KEYED_MODES:
        return img
    out = img.convert(_KEYED_MODES[img.mode])
    return img if out.getchannel("A").getextrema()[0] == 255 else out


def palette_mode(img: Image.Image) -> str:
    """The mode a palette image ("P") is expanded to: "L" when every colour it uses is a gray
    (a gray GIF: read as RGB, it made a folder of them 3-channel and predict say a colour
    image was turned gray), else "RGB"; with an "A" when the palette has a transparent entry.
    """
    alpha = "transparency" in img.info
    palette = img.getpalette("RGB") or []
    colours = [palette[3 * i : 3 * i + 3] for _, i in img.getcolors(256) or []]
    gray = bool(colours) and all(len(c) == 3 and c[0] == c[1] == c[2] for c in colours)
    return ("LA" if alpha else "L") if gray else ("RGBA" if alpha else "RGB")


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise TooLarge(
            f"{path}: {h}×{w} (H×W) = {w * h:,} pixels is more than the {max_pixels:,} cnnlab "
            "reads (a decompression bomb, or a scan far larger than a CNN input); shrink it first"
        )


def _check_visible(path: Path, img: Image.Image) -> None:
    """DataError for an image whose picture is in its alpha alone: black wherever it shows,
    only the transparency varying (line art on a transparent background, as drawing apps
    export it). Over black, where cnnlab puts transparent pixels, it is blank: a folder of
    such drawings trained on blank images without a word."""
    if img.mode not in _ALPHA_MODES:
        return
    img = img if img.mode in ("RGBA", "LA") else img.convert("RGBA")  # La, RGBa, PA
    alpha = img.getchannel("A")
    low, high = alpha.getextrema()
    if low == high:  # no transparency that varies: nothing is lost over black
        return
    # gray level × alpha / 255 (truncated) is 0 everywhere: black, or not shown (a full
    # composite and its extrema took 0.6 s of a 12-megapixel RGBA PNG's 1.4 s)
    if ImageChops.multiply(img.convert("L"), alpha).getbbox() is not None:
        return
    raise DataError(
        f"{path}: a black drawing on a transparent background (only its transparency "
        "varies): over black, where cnnlab puts transparent pixels, it is blank; flatten it "
        "onto white first"
    )


def _check_levels(path: Path, img: Image.Image) -> None:
    """DataError naming the file when its deep gray levels fit no range (`deep_white`)."""
    if img.mode in _DEEP_GRAY_MODES:
        try:
            deep_white(img.mode, np.asarray(img, dtype=np.float64))
        except DataError as error:
            raise DataError(f"{path}: {error}") from None


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert to L (1 channel) or RGB (3), compositing any alpha over black first."""
    target = "L" if channels == 1 else "RGB"
    if img.mode == target:
        return img
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    if img.mode in _DEEP_GRAY_MODES:  # 16-bit/float gray: scale to 8 bits
        a = np.asarray(img, dtype=np.float64)
        top = deep_white(img.mode, a)
        img = Image.fromarray(np.clip(a * 255.0 / top, 0, 255).round().astype(np.uint8), "L")
    return img.convert(target)


def deep_white(mode: str, a: np.ndarray) -> float:
    """The value a deep gray image's pixels `a` mean as white: 65535 for 16-bit (or values
    past 255), 1.0 for a float image within [0, 1] give or take `FLOAT_SLACK` (a float TIFF's
    convention: it was read all black; resampling overshoots it, and 1.02 made it black
    again), else 255. DataError (without the path) for values no range holds: NaN or
    infinite (an infinite pixel made the rest black), negative (a [-1, 1] image was half
    black) or past 65535 (clipped white)."""
    if mode.startswith("I;16"):
        return 65535.0
    low, high = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    kind = "float" if mode == "F" else "32-bit integer"
    if not (math.isfinite(low) and math.isfinite(high)):
        raise DataError(
            f"its {kind} pixels include NaN or infinite values (no-data pixels?); give them a "
            "number first"
        )
    if mode == "F" and -FLOAT_SLACK <= low and high <= 1 + FLOAT_SLACK:
        return 1.0
    if low < (-FLOAT_SLACK if mode == "F" else 0) or high > 65535:
        raise DataError(
            f"its {kind} pixels span {low:g}..{high:g}, in none of the ranges of gray levels "
            "cnnlab reads (0..1 floats, 0..255, 0..65535); scale them into one first"
        )
    return 65535.0 if high > 255 else 255.0


def mode_change(path: str | Path | BinaryIO, channels: int) -> str:
    """What reading `path` (or an open binary file: an upload's bytes) for a `channels`-channel
    model does to its pixel format: "" when nothing, else "RGB->L" (colour to ITU-R 601-2
    luma), "RGBA->RGB" (alpha over black), "L->RGB" ... From the file's header, after
    `open_image` accepted the file; an image with an alpha band is decoded to see whether any
    pixel is transparent: an opaque one is read as its colours alone (screenshots are often
    RGBA), and the note said "transparent pixels are black" of it."""
    with Image.open(path if hasattr(path, "read") else Path(path).expanduser()) as img:
        mode = img.mode
        if mode == "P":  # open_image expands a palette (a GIF's) to L or RGB (+A), as this
            mode = palette_mode(img)
        elif "transparency" in img.info and mode in _KEYED_MODES:  # so does a tRNS colour
            img = keyed_alpha(img)
            mode = img.mode
        if mode in _ALPHA_MODES and _opaque(img):
            mode = "L" if mode in ("LA", "La") else "RGB"
    target = "L" if channels == 1 else "RGB"
    return "" if mode == target else f"{mode}->{target}"


def _opaque(img: Image.Image) -> bool:
    """No pixel of `img` (a mode with alpha, or a palette with a transparent entry) lets the
    black behind show: its alpha band is 255 everywhere."""
    rgba = img.convert("RGBA") if img.mode == "P" else img
    return rgba.getchannel("A").getextrema() == (255, 255)


def fit(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize to cover `size` (H, W) with the aspect ratio kept, then center-crop: as
    `resize_crop` resizes a data set's tensors (Pillow's antialiased bilinear equals torch's
    `interpolate(mode="bilinear", antialias=True)` to one grey level; bicubic put a PNG of a
    test image up to 48 levels from the image eval resized).

    A cover resize far larger than both the image and `size` (a thin image: 1×200,000 to 28×28
    passes through 28×5,600,000, 590 MB) is done on the cropped region only (Pillow's `box`:
    the same filter on the same source pixels, to one grey level), so no size of image makes
    more than a few copies of itself or of `size`."""
    th, tw = size
    w, h = img.size
    if (h, w) == (th, tw):
        return img
    scale = max(th / h, tw / w)
    rw, rh = max(tw, round(w * scale)), max(th, round(h * scale))
    left, top = (rw - tw) // 2, (rh - th) // 2
    if rw * rh > _FIT_GROWTH * max(w * h, tw * th):
        sx, sy = w / rw, h / rh  # the crop's corners in source pixels
        box = (left * sx, top * sy, (left + tw) * sx, (top + th) * sy)
        return img.resize((tw, th), Image.Resampling.BILINEAR, box=box)
    # the whole resize, then the crop: bit for bit what cnnlab has always made of any image
    # whose resize stays small (the box path differs by one grey level in some pixels)
    img = img.resize((rw, rh), Image.Resampling.BILINEAR)
    return img.crop((left, top, left + tw, top + th))


def to_tensor(img: Image.Image) -> torch.Tensor:
    """An L or RGB image as uint8 `(C, H, W)`."""
    pixels = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())  # (H, W) or (H, W, 3)
    return pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1).contiguous()


def read_image(
    path: str | Path,
    channels: int,
    size: tuple[int, int] | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> torch.Tensor:
    """One image file as uint8 `(channels, H, W)`, prepared as `image_folder` prepares each of
    its images; with `size=(H, W)` resized to it as the folder loader resizes (cover + crop)."""
    img = open_as(path, channels, max_pixels)
    return to_tensor(fit(img, tuple(size)) if size is not None else img)


def open_as(path: str | Path, channels: int, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """One image file opened and converted to 1 or 3 channels as `image_folder` does (size
    guard, EXIF, alpha, 16 bits), at its own size: what read_image resizes."""
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3 for an image file, got {channels}")
    return to_mode(open_image(path, max_pixels), channels)


def read_images(
    paths: list[str | Path],
    channels: int,
    size: tuple[int, int],
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> torch.Tensor:
    """Image files as one uint8 batch `(B, channels, H, W)`, each read as `read_image` reads."""
    return read_images_sized(paths, channels, size, max_pixels)[0]


def read_images_sized(
    paths: Sequence[str | Path],
    channels: int,
    size: tuple[int, int],
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """`read_images`' batch, and each file's own (H, W) before it was resized to `size` (for
    a note that it was)."""
    if not paths:
        raise DataError("no image files given")
    pixels, sizes = [], []
    for path in paths:
        img = open_as(path, channels, max_pixels)
        sizes.append((img.height, img.width))
        pixels.append(to_tensor(fit(img, tuple(size))))  # (C, H, W)
    return torch.stack(pixels), sizes
