"""Image folders: `DIR/<class>/<image>`, one sub-folder per class, read with Pillow.

Policies (stated here, applied to every image):
- Files: the extensions of `IMAGE_EXTENSIONS` (.png .jpg .jpeg .bmp .webp .tif .tiff .gif
  ...; any case) anywhere under a class folder, and HEIC or camera raw files
  (`UNDECODED_EXTENSIONS`), which are skipped by name as unreadable, as is a symlink to
  nothing; other files, hidden entries (and all under a hidden folder) and anything not a
  regular file (a named pipe) are ignored. Classes
  are the sorted sub-folder names; a name whose bytes are not UTF-8 keeps them as `\\xe9`
  escapes (`class_name`).
- Each file is read by `cnnlab.data.image.open_image`, the reader every command uses: EXIF
  orientation applied, at most `MAX_IMAGE_PIXELS` pixels (a decompression bomb is refused).
- Unreadable, corrupt or too large images are skipped and recorded in `ImageSet.skipped` as
  `(path, reason)`; with `strict=True` the first one raises `DataError`.
- Channels: `channels=None` picks 1 if every image read is grayscale, else 3 (per call:
  `load_splits` gives the test split the train split's channels and size). Grayscale → RGB
  repeats the gray level; RGB → L is ITU-R 601-2 luma; an alpha channel is composited over
  black (the background of MNIST-style data) before it is dropped. Images whose mode had to
  change are listed in `ImageSet.converted` as `(path, "RGBA->L")`, and a file of many
  frames (an animated GIF, a multi-page TIFF), read at its first, as `"first frame"`.
  16-bit gray is scaled to 8 bits (÷257); 32-bit integer or float gray above 255 is scaled
  from 0..65535.
- Size: `size=None` requires all images to share one size (else `DataError`); otherwise
  each image is resized so it covers `size` with its aspect ratio kept (bilinear, Pillow's
  antialiasing, as `resize_crop` resizes tensors) and center-cropped to it: no stretching,
  the borders are what is lost.
- Splits: `split=None` reads everything, in class order. With "train"/"test": a `DIR/train`
  and `DIR/test` layout is used when present; otherwise a fixed stratified hold-out (20% of
  each class, by a seeded shuffle of the sorted file names) is the test split. A split's
  images come in a fixed shuffled order (`interleaved_order`, seed 0) whose every prefix
  holds each class in its share: the commands that take the first N images (probe's 5,000
  and 2,000, diagnose's --limit, the report's and actmax's samples) take every class, not
  the first classes alone.
- An empty folder, or a class left without a readable image, is a `DataError` naming it.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from cnnlab.data.image import (
    FRAMES,
    IMAGE_EXTENSIONS,
    UNDECODED_EXTENSIONS,
    NotAnImage,
    fit,
    open_image,
    to_mode,
)
from cnnlab.data.imageset import ImageSet
from cnnlab.data.synthetic import stratified_holdout
from cnnlab.errors import DataError

if TYPE_CHECKING:
    from cnnlab.inspect.progress import Progress

FOLDER_TEST_FRACTION = 0.2
# The files a folder lists: those it decodes, and those it names as skipped (HEIC, raw)
LISTED_EXTENSIONS = IMAGE_EXTENSIONS + UNDECODED_EXTENSIONS
# the change recorded of a file of many frames (an animated GIF, a multi-page TIFF): every
# reader takes its first frame, and training on a folder of them said nothing of it
FIRST_FRAME = "first frame"
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "La"}


def list_images(root: str | Path) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """`(classes, [(file, class index)])` of a class-per-sub-folder tree; errors name the folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (expected one sub-folder per class)")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(
            f"{root}: no class sub-folders; put the images of each class in DIR/<class>/"
        )
    files = []
    for index, class_dir in enumerate(class_dirs):
        found = _image_files(class_dir)
        if not found:
            raise DataError(
                f"{class_dir}: empty class (no {'/'.join(IMAGE_EXTENSIONS)} files); "
                "add images or remove the folder"
            )
        files += [(p, index) for p in found]
    classes = tuple(class_name(p) for p in class_dirs)
    # Latin-1 bytes and the `\xe9` escape they print as, or é as one character and as e with
    # a combining accent (as macOS writes names): one name on screen, two classes
    twice = [c for c, k in Counter(map(_nfc, classes)).items() if k > 1]  # one pass
    if twice:
        raise DataError(
            f"{root} has more than one class named {twice[0]!r} (a name that is not UTF-8 "
            "prints its bytes as \\xe9; an accent may be one character or two, as macOS "
            "writes it); rename one of its class folders"
        )
    return classes, files


def _nfc(name: str) -> str:
    """A class name as it shows: accents composed (Unicode NFC)."""
    return unicodedata.normalize("NFC", name)


def _image_files(directory: Path) -> list[Path]:
    """The image files anywhere under `directory`, sorted. Hidden entries are left out: a
    file whose name starts with "." and everything under a hidden folder (a NAS's
    .@__thumb/ or a viewer's .thumbnails/ holds copies of the class's images, which were read
    as more images of it). A sub-folder reached through a symlink is read, as a class folder
    that is a symlink is (rglob passed over cat/2023 -> an archive without a word), each real
    folder once, so a link back up ends; sub-folders are walked in name order, so which link
    names a folder reached twice is fixed."""
    found, seen = [], set()
    for top, folders, names in os.walk(directory, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        found += [p for p in (Path(top, name) for name in names) if _listed(p)]
    return sorted(found)


def _listed(path: Path) -> bool:
    """A file a folder lists: not hidden, an extension it decodes or names as skipped, and a
    regular file (not a named pipe) or a symlink to nothing (photos linked from a drive that
    is not mounted: passed over unnamed, a class of them was "empty", now each is named as
    skipped)."""
    return (
        not path.name.startswith(".")
        and path.suffix.lower() in LISTED_EXTENSIONS
        and (path.is_file() or (path.is_symlink() and not path.exists()))
    )


def stray_images(root: str | Path) -> list[Path]:
    """The image files lying beside the class folders of `root` (root/x.png, and
    root/train/x.png or root/test/x.png in a train/test layout), sorted: no class and no
    split reads them. Listed as a class folder lists its files (`LISTED_EXTENSIONS`, hidden
    entries left out), so a photo.heic there is named as photo.png is; it was passed over
    unnamed while one in a class folder is named as skipped. [] for a path that is no
    directory."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return []
    layout = [root / s for s in ("train", "test") if (root / s).is_dir()]
    tops = [root] + (layout if len(layout) == 2 else [])
    return sorted(p for top in tops for p in top.iterdir() if _listed(p))


def expand_folders(paths: list[str]) -> list[str]:
    """`paths` with each directory replaced by the image files under it (sorted, as a
    class folder is read): `cnnlab predict RUN photos/` predicts every image in it. A
    directory with no image file is a DataError naming it."""
    out = []
    for path in paths:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            out.append(path)
            continue
        found = _image_files(directory)
        if not found:
            raise DataError(
                f"{shown(directory)}: a directory with no image file "
                f"({'/'.join(IMAGE_EXTENSIONS)}); give image files or a folder of them"
            )
        out += [str(p) for p in found]
    return out


def class_name(folder: Path) -> str:
    """A class folder's name as text that prints and encodes everywhere: a name whose bytes
    are not UTF-8 (on POSIX) keeps the bad bytes as `\\xe9` escapes, so distinct folders stay
    distinct and the report, JSON and terminal show it instead of failing."""
    return os.fsencode(folder.name).decode("utf-8", "backslashreplace")


def shown(path: Path) -> str:
    """A path as printable text (bytes that are not UTF-8 escaped as in `class_name`)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def split_files(
    root: Path, split: str | None
) -> tuple[Path, tuple[str, ...], list[tuple[Path, int]]]:
    """`(folder read, classes, [(file, label)])` of `split` (see the module docstring)."""
    if split is None:
        return (root, *list_images(root))
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r} for image folder {root}; use 'train' or 'test'")
    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    if has_train != has_test:
        have, lack = ("train", "test") if has_train else ("test", "train")
        raise DataError(
            f"{root} has {have}/ but no {lack}/: give both (each with one sub-folder per "
            "class), or neither to hold out 20% of each class as the test split"
        )
    if has_train:
        classes, files = list_images(root / split)
        if split == "train":
            return root / split, classes, files
        train_classes, _ = list_images(root / "train")  # test labels use train's numbering
        # by the name shown: train/ unzipped from a Mac (é as e + accent) and a test/ made
        # here hold one class "café", which was "not in train"
        shown_as = {_nfc(c): i for i, c in enumerate(train_classes)}
        missing = sorted(c for c in classes if _nfc(c) not in shown_as)
        if missing:
            raise DataError(f"{root / 'test'}: classes {missing} are not in {root / 'train'}")
        remap = [shown_as[_nfc(c)] for c in classes]
        return root / split, train_classes, [(f, remap[label]) for f, label in files]
    classes, files = list_images(root)
    # the hold-out is drawn among files that can be read: a HEIC or camera-raw file, listed
    # only to be named as skipped, would reshuffle it (and be drawn as a test image that
    # never is one); it is named with the training part
    undecoded = [(f, y) for f, y in files if f.suffix.lower() in UNDECODED_EXTENSIONS]
    files = [(f, y) for f, y in files if f.suffix.lower() not in UNDECODED_EXTENSIONS]
    held_out = stratified_holdout(np.array([y for _, y in files]), FOLDER_TEST_FRACTION, seed=0)
    keep = held_out if split == "test" else ~held_out
    chosen = [f for f, k in zip(files, keep, strict=True) if k]
    return root, classes, chosen if split == "test" else chosen + undecoded


def holdout_fingerprint(path: str | Path) -> str | None:
    """SHA-256 of the files a folder's test hold-out is drawn from (relative path and class,
    in order), None for a folder with DIR/train and DIR/test (a fixed test set) or one that
    is no class tree. The hold-out is a seeded draw over that list: a file added, removed
    or renamed redraws it, and a test split read again then holds images a run trained on.
    A listing, nothing decoded."""
    root = Path(path).expanduser()
    if (root / "train").is_dir() or (root / "test").is_dir():
        return None
    try:
        _, files = list_images(root)
    except DataError:
        return None
    digest = hashlib.sha256()
    for file, label in files:
        if file.suffix.lower() not in UNDECODED_EXTENSIONS:
            digest.update(
                f"{file.relative_to(root).as_posix()}\t{label}\n".encode(errors="surrogateescape")
            )
    return digest.hexdigest()


def _read_one(file: Path, strict: bool) -> tuple[Image.Image | None, tuple[str, str] | None]:
    """The decoded image, or None and `(path, reason)` for a file that cannot be read (a
    DataError naming it when strict)."""
    try:
        return open_image(file), None
    except DataError as e:
        # a folder lists many such files: the short reason, the path says the rest
        short = isinstance(e, NotAnImage)
        reason = e.reason.replace(" (no image format PIL knows)", "") if short else str(e)
        if file.suffix.lower() in UNDECODED_EXTENSIONS:
            kind = file.suffix[1:].upper()
            reason = f"{kind} is no format Pillow decodes; convert it to PNG or JPEG"
        reason = reason.removeprefix(f"{file}: ")
        if strict:
            raise DataError(f"{shown(file)}: corrupt or unreadable image ({reason})") from e
        return None, (shown(file), reason)


def _conform_image(
    file: Path, img: Image.Image, channels: int, size: tuple[int, int] | None, first: tuple | None
) -> tuple[np.ndarray, str]:
    """The image as an (H, W) or (H, W, 3) uint8 array, and its size change ("" if none)."""
    (w0, h0) = img.size
    img = to_mode(img, channels)
    if size is not None:
        img = fit(img, size)
    elif first is not None and (img.size[1], img.size[0]) != first:
        raise DataError(
            f"{shown(file)} is {img.size[1]}×{img.size[0]} (H×W) but earlier images are "
            f"{first[0]}×{first[1]}; give a size to resize them all (size=... in Python, "
            "`cnnlab data DIR --size 28`, --input C,H,W to `cnnlab train --model` or "
            "`cnnlab import`; a spec or preset resizes them to its input by itself)"
        )
    resized = f"{h0}x{w0}->{img.size[1]}x{img.size[0]}" if img.size != (w0, h0) else ""
    return np.asarray(img, dtype=np.uint8), resized


def _read_all(
    files: list[tuple[Path, int]], channels: int | None, size, strict: bool, progress=None
):
    """`(arrays, labels, channels, skipped, converted)`: each file decoded, converted and
    resized before the next is decoded (holding every decoded image until all were read took
    1.2 GB for 40 photos of 6 megapixels, to make 40 images of 32×32). With `channels=None`
    each gray image is read as L and each colour one as RGB; where both kinds came, the gray
    ones are repeated into three channels, which is what reading them as RGB gives (the
    same resize on three equal channels; Pillow's luma of v, v, v is v). Reading every image
    as RGB and cutting it back to one channel when all were gray took twice the time."""
    arrays, labels, read, skipped = [], [], [], []
    for done, (file, label) in enumerate(files):
        if progress is not None:  # 48-megapixel photos take a second each to decode
            progress(done, len(files), "reading images")
        img, bad = _read_one(file, strict)
        if img is None:
            skipped.append(bad)
            continue
        first = arrays[0].shape[:2] if arrays else None
        kind = channels or (1 if img.mode in _GRAY_MODES else 3)
        array, resized = _conform_image(file, img, kind, size, first)
        arrays.append(array)
        labels.append(label)
        read.append((file, img.mode, resized, img.info.get(FRAMES, 1)))
    if channels is None:
        channels = 1 if all(a.ndim == 2 for a in arrays) else 3
        if channels == 3:  # (H, W) -> (H, W, 3)
            arrays = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    target = "L" if channels == 1 else "RGB"
    converted = []
    for file, mode, resized, frames in read:
        changes = [f"{mode}->{target}"] if mode != target else []
        changes += [resized] if resized else []
        changes += [FIRST_FRAME] if frames > 1 else []
        if changes:
            converted.append((shown(file), ", ".join(changes)))
    return arrays, labels, channels, skipped, converted


def interleaved_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded shuffle in which every prefix holds each class in its share of the whole:
    the k-th of a class's n images (in a seeded random order) is placed at (k + u) / n,
    u uniform in [0, 1), and all are sorted by that key. `(N,)` labels -> `(N,)` indices."""
    rng = np.random.default_rng(seed)
    keys = np.empty(len(labels))
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        keys[members] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
    return np.argsort(keys, kind="stable")


def image_folder(
    path: str | Path,
    channels: int | None = None,
    size: int | tuple[int, int] | None = None,
    strict: bool = False,
    split: str | None = None,
    progress: Progress | None = None,
) -> ImageSet:
    """Read a class-per-sub-folder image tree into an `ImageSet` `(N, channels, H, W)` uint8.

    See the module docstring for the channel, size, split and error policies. Skipped files are
    in `.skipped`, converted ones in `.converted`. progress: called as progress(files read,
    files, "reading images") before each file and once all are read
    (`cnnlab.inspect.progress`): a folder of phone photos takes 0.1 to 1.4 s an image.
    """
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3 for an image folder, got {channels}")
    root = Path(path).expanduser()
    folder, classes, files = split_files(root, split)
    target = (size, size) if isinstance(size, int) else size
    arrays, labels, channels, skipped, converted = _read_all(
        files, channels, target, strict, progress
    )
    if progress is not None:
        progress(len(files), len(files), "reading images")

    # a test split may lack a class (a hold-out of a tiny class); training data may not
    for index in sorted(set(range(len(classes))) - set(labels)):
        if split != "test":
            where = folder / classes[index]
            bad = [(p, why) for p, why in skipped if Path(p).is_relative_to(where)]
            why = f"; {bad[0][1]}" if bad else ""  # e.g. HEIC: convert it to PNG or JPEG
            raise DataError(
                f"{where}: empty class (none of its images could be read: "
                f"{[p for p, _ in bad[:3]]}{why})"
            )
    if not arrays:
        raise DataError(f"{folder}: no readable image for split {split!r}")
    stacked = torch.from_numpy(np.stack(arrays))  # (N, H, W) or (N, H, W, 3)
    images = stacked.unsqueeze(1) if channels == 1 else stacked.permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(labels, dtype=torch.int64)
    if split is not None:  # probe --train 20 on a class-ordered split saw 2 of 4 classes
        order = torch.from_numpy(interleaved_order(labels.numpy(), seed=0))
        images, labels = images[order], labels[order]
    source = str(folder) if split is None or folder != root else f"{root} [{split} hold-out]"
    return ImageSet(
        images,
        labels,
        classes,
        source,
        tuple(skipped),
        tuple(converted),
    )
