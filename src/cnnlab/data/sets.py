"""`load_dataset`: one entry point for every data source, by name or directory."""

from __future__ import annotations

import difflib
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.data.fashion import fashion_mnist, split_files
from cnnlab.data.folder import image_folder, shown
from cnnlab.data.folder import split_files as folder_split_files
from cnnlab.data.image import MAX_IMAGE_PIXELS
from cnnlab.data.imageset import ImageSet, conform, size_pair
from cnnlab.data.synthetic import digits, shapes
from cnnlab.errors import DataError

if TYPE_CHECKING:
    from cnnlab.inspect.progress import Progress

DATASET_NAMES = ("fashion-mnist", "digits", "shapes")
_ALIASES = {"fashion_mnist": "fashion-mnist", "fmnist": "fashion-mnist"}


def dataset_name(name: str | Path) -> str | None:
    """The named data set `name` means ("fmnist" -> "fashion-mnist"), None for anything else
    (a directory). A name wins over a directory of that name in the working directory."""
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    return key if key in DATASET_NAMES else None


# Named sets whose classes a mirror image changes (a mirrored 2, 3, 4, 5 or 7 is no digit).
MIRROR_CHANGES_CLASS = frozenset({"digits"})


def flips_by_default(name: str | Path) -> bool:
    """Whether training flips images of `name` unless told: not for a set in
    MIRROR_CHANGES_CLASS; yes for the others and for image folders (whose classes cnnlab
    cannot judge: training notes it, suggesting --no-flip)."""
    return dataset_name(name) not in MIRROR_CHANGES_CLASS


def load_dataset(
    name: str | Path,
    split: str = "train",
    *,
    root: str | Path | None = None,
    channels: int | None = None,
    size: int | tuple[int, int] | None = None,
    strict: bool = False,
    download: bool = False,
    progress: Progress | None = None,
) -> ImageSet:
    """Load `split` ("train" | "test") of a named set or an image folder as an `ImageSet`.

    name: "fashion-mnist" (found via `root`, `$CNNLAB_DATA`, the cache, Debian's package;
    `download=True` fetches it), "digits", "shapes", or a directory with one sub-folder per
    class. `channels` (1 or 3) and `size` (int or (H, W)) convert the images to what a model
    needs: resize to cover then center-crop, for every source alike. progress: an image
    folder's reading, file by file (`image_folder`; the named sets load in a second).
    """
    _check_size(size)
    key = dataset_name(name)
    if key == "fashion-mnist":
        ds = fashion_mnist(split, root=root, download=download)
    elif key == "digits":
        ds = digits(split)
    elif key == "shapes":  # drawn at the requested (square) size rather than resized
        side = size if isinstance(size, int) else size[0] if size and size[0] == size[1] else 32
        ds = shapes(split, size=side)
    elif _holds_fashion_mnist(Path(name).expanduser()):  # `--data DIR`, as the errors advise
        ds = fashion_mnist(split, root=name, download=download)
    elif Path(name).expanduser().is_dir():
        ds = image_folder(name, channels, size, strict, split, progress)
        return replace(ds, loaded_as=str(Path(name).expanduser().resolve()), loaded_split=split)
    else:
        raise _not_found(str(name))
    loaded = {"loaded_as": _loaded_as(key, name, root, ds), "loaded_split": split}
    return replace(conform(ds, channels, size), **loaded)


def _check_size(size: int | tuple[int, int] | None) -> None:
    """Images are converted to at most MAX_IMAGE_PIXELS, the most read from a file: a
    folder's --input 1,20000,40000 raised Pillow's DecompressionBombError as a traceback, and
    a named set would have filled the memory."""
    if size is None:
        return
    h, w = size_pair(size)
    if h * w > MAX_IMAGE_PIXELS:
        raise DataError(
            f"images of {h}×{w} are {h * w:,} pixels, more than the {MAX_IMAGE_PIXELS:,} "
            "an image may have here; give a smaller size (--input C,H,W)"
        )


def _loaded_as(key: str | None, name: str | Path, root: str | Path | None, ds: ImageSet) -> str:
    """What a run records so `load_dataset` finds these images again: the set's name, unless
    `root` pointed elsewhere; then the directory holding the files (a directory of IDX files
    loads as Fashion-MNIST). The name alone reopened Debian's copy, scored without an error."""
    if key is None:
        return str(Path(name).expanduser().resolve())
    if key == "fashion-mnist" and root is not None:
        return str(Path(ds.source).parent.resolve())
    return key


def load_splits(
    name: str | Path,
    *,
    root: str | Path | None = None,
    channels: int | None = None,
    size: int | tuple[int, int] | None = None,
    strict: bool = False,
    download: bool = False,
    progress: Progress | None = None,
) -> tuple[ImageSet, ImageSet | None]:
    """`(train, test)` of a data set as training and `cnnlab data` need them.

    - The test split gets the train split's channels and size (those given, else those
      found), so one folder never shows 3×28×28 beside 1×28×28.
    - At least two classes: a one-class set "trains" to 100 % and loss 0 and means nothing.
    - `test` is None only for an image folder without train/ and test/ whose classes are all
      too small to hold any image out (fewer than 3 each). Any other test split that cannot
      be read (missing, corrupt or truncated files, a label out of range, a class the train
      split lacks) raises the DataError naming the file: never a silent "no test accuracy".
    Arguments as `load_dataset`.
    """
    options = {"root": root, "strict": strict, "download": download, "progress": progress}
    _check_classes(name)  # before any image is decoded: a size error hid a wrapper folder
    train = load_dataset(name, "train", channels=channels, size=size, **options)
    if _no_holdout(name):
        return train, None
    shape = {"channels": train.shape[0], "size": tuple(train.shape[1:])}
    return train, load_dataset(name, "test", **shape, **options)


def _check_classes(name: str | Path) -> None:
    """A folder needs two classes (one "trains" to 100 % and loss 0, meaning nothing). When
    the one class's images are in sub-folders, cnnlab cannot tell a wrapper folder (`photos/`
    holding `cat/` and `dog/`: give `photos`) from one class filed by date (`cat/2023`,
    `cat/2024`: add other classes), so the error says both."""
    directory = Path(name).expanduser()
    if dataset_name(name) is not None or not directory.is_dir():
        return
    if _holds_fashion_mnist(directory):
        return
    folder, classes, files = folder_split_files(directory, "train")
    if len(classes) >= 2:
        return
    # the listing just made, rather than another walk of the folder; the class folder's own
    # name from it (classes[0] is the name as shown: bytes that are not UTF-8 escaped)
    parts = [f.relative_to(folder).parts for f, _ in files]
    inner = folder / parts[0][0] if parts else folder / classes[0]
    subs = sorted({p[1] for p in parts if len(p) > 2 and not p[1].startswith(".")})
    fix = "add a sub-folder of images for each other class"
    if len(subs) > 1:
        listed = ", ".join(shown(Path(s)) for s in subs[:3]) + (", ..." if len(subs) > 3 else "")
        fix = (
            f"its images are in sub-folders of {shown(inner)}: give that directory as the "
            f"data if they ({listed}) are the classes, or, if '{classes[0]}' is one class, "
            f"add a sub-folder of images to {shown(folder)} for each other class"
        )
    raise DataError(
        f"{shown(folder)}: only one class ('{classes[0]}'); a classifier needs at least two: {fix}"
    )


def _no_holdout(name: str | Path) -> bool:
    """True for an image folder (no train/ test/) whose 20 % hold-out is empty."""
    directory = Path(name).expanduser()
    if dataset_name(name) is not None or _holds_fashion_mnist(directory):
        return False
    if not directory.is_dir() or (directory / "test").is_dir():
        return False
    return not folder_split_files(directory, "test")[2]


def _holds_fashion_mnist(directory: Path) -> bool:
    """A directory with Fashion-MNIST's IDX files (either split) is that data set, not a folder."""
    return directory.is_dir() and any(split_files(directory, split) for split in ("train", "test"))


def _not_found(name: str) -> DataError:
    """A name with a slash, or starting with . or ~, was meant as a directory: say so."""
    if "/" in name or os.sep in name or name.startswith((".", "~")):
        what = "not a directory" if Path(name).expanduser().exists() else "no such directory"
        return DataError(
            f"{name}: {what} (a data directory holds one sub-folder of images per class, or "
            "the Fashion-MNIST IDX files)"
        )
    # a mistyped name (fashon-mnist, digit) gets the set it is nearest to, as a preset does
    near = difflib.get_close_matches(name.lower(), DATASET_NAMES + tuple(_ALIASES), n=1)
    meant = "" if not near else f"; did you mean {dataset_name(near[0])}?"
    return DataError(
        f"unknown data set {name!r}: use one of {', '.join(DATASET_NAMES)} "
        f"or a directory with one sub-folder of images per class{meant}"
    )
