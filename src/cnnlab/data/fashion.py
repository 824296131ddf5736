"""Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): 70,000 28×28 grayscale clothing images, 10 classes.

Where it looks, in order (DESIGN.md "Data"): the `root` argument (`--data DIR`), then
`$CNNLAB_DATA` (each: the directory itself, then its `fashion-mnist/` sub-directory), then
`~/.cache/cnnlab/fashion-mnist`, then `/usr/share/datasets/fashion-mnist` (Debian's
`dataset-fashion-mnist`). An explicit `root` that lacks the files is an error, never silently
replaced by another copy; so is a `$CNNLAB_DATA` that is no directory (one that lacks the
files is searched like the others).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from cnnlab.data.download import FASHION_MNIST_URL, download_fashion_mnist
from cnnlab.data.idx import read_idx_pair
from cnnlab.data.imageset import ImageSet
from cnnlab.errors import DataError

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CACHE_DIR = Path("~/.cache/cnnlab/fashion-mnist")
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_PREFIX = {"train": "train", "test": "t10k"}


def _split_prefix(split: str) -> str:
    if split not in _PREFIX:
        raise DataError(f"unknown split {split!r} for fashion-mnist; use 'train' or 'test'")
    return _PREFIX[split]


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def split_files(directory: str | Path, split: str) -> tuple[Path, Path] | None:
    """`(images, labels)` paths of `split` in `directory` (`.gz` preferred), or None."""
    directory, prefix = Path(directory).expanduser(), _split_prefix(split)
    images = _find_file(directory, f"{prefix}-images-idx3-ubyte")
    labels = _find_file(directory, f"{prefix}-labels-idx1-ubyte")
    return (images, labels) if images and labels else None


def search_path(root: str | Path | None = None) -> list[Path]:
    """The directories searched for Fashion-MNIST, in order."""
    if root is not None:
        return [Path(root).expanduser(), Path(root).expanduser() / "fashion-mnist"]
    return [*_env_dirs(), CACHE_DIR.expanduser(), SYSTEM_DIR]


def _env_dirs() -> list[Path]:
    """$CNNLAB_DATA and its `fashion-mnist/`; DataError naming the variable when it is set to
    no directory (a typo there was skipped, and another copy read with no word)."""
    env = os.environ.get("CNNLAB_DATA")
    if not env:
        return []
    path = Path(env).expanduser()
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise DataError(
            f"$CNNLAB_DATA is {env!r}, which {what}; set it to the directory that holds "
            "Fashion-MNIST's files (or their fashion-mnist/ sub-directory), or unset it"
        )
    return [path, path / "fashion-mnist"]


def find_fashion_mnist(split: str = "train", root: str | Path | None = None) -> tuple[Path, Path]:
    """Locate the image and label files of `split`; `DataError` lists where it looked."""
    looked = search_path(root)
    for directory in looked:
        found = split_files(directory, split)
        if found:
            return found
    prefix = _split_prefix(split)
    raise DataError(
        f"Fashion-MNIST {split} files ({prefix}-images-idx3-ubyte[.gz], "
        f"{prefix}-labels-idx1-ubyte[.gz]) not found; looked in: "
        + ", ".join(str(d) for d in looked)
        + ". Get them with `apt-get install dataset-fashion-mnist`, point to a copy (the "
        "commands' --data DIR, `cnnlab data fashion-mnist --root DIR`, or $CNNLAB_DATA), or "
        f"download them from {FASHION_MNIST_URL} with `cnnlab data fashion-mnist --download "
        "DIR` and then train with --data DIR"
    )


def fashion_mnist(
    split: str = "train",
    root: str | Path | None = None,
    download: bool = False,
    *,
    base_url: str = FASHION_MNIST_URL,
    checksums: dict[str, str] | None = None,
) -> ImageSet:
    """Fashion-MNIST `split` ("train": 60,000, "test": 10,000) as an `ImageSet` (N, 1, 28, 28).

    With `download=True` and no copy found, the four official files are fetched (MD5-checked)
    into `root` or `~/.cache/cnnlab/fashion-mnist` from `base_url` (a mirror; `checksums`
    maps file name to MD5 and defaults to the official ones).
    """
    if root is None:
        _env_dirs()  # a $CNNLAB_DATA set to no directory is said, not downloaded around
    try:
        images_path, labels_path = find_fashion_mnist(split, root)
    except DataError:
        if not download:
            raise
        target = Path(root).expanduser() if root is not None else CACHE_DIR.expanduser()
        download_fashion_mnist(target, base_url, checksums=checksums)
        images_path, labels_path = find_fashion_mnist(split, target)
    images, labels = read_idx_pair(images_path, labels_path, len(FASHION_MNIST_CLASSES))
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected (N, H, W) images, got shape {images.shape}")
    return ImageSet(
        torch.from_numpy(images.copy()).unsqueeze(1),  # (N, 1, 28, 28)
        torch.from_numpy(labels.copy()),
        FASHION_MNIST_CLASSES,
        str(images_path),
    )
