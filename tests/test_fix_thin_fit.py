"""A thin image is cropped before it is resized: `fit` covered 28×28 by resizing a 274-byte
1×200,000 PNG to 28×5,600,000 first, so `cnnlab predict RUN thin.png` peaked at 590 MB
resident (260 MB for a 28×28 file). Truth: Pillow's own resize-then-crop of the same image,
and the process's peak resident memory."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from cnnlab.data.folder import image_folder
from cnnlab.data.image import fit, read_image


def pil_cover_crop(img: Image.Image, th: int, tw: int) -> np.ndarray:
    """The cover-resize then centre-crop, with Pillow alone (the policy `fit` documents)."""
    w, h = img.size
    scale = max(th / h, tw / w)
    rw, rh = max(tw, round(w * scale)), max(th, round(h * scale))
    left, top = (rw - tw) // 2, (rh - th) // 2
    resized = img.resize((rw, rh), Image.Resampling.BILINEAR)
    return np.asarray(resized.crop((left, top, left + tw, top + th)), dtype=int)


PEAK = (
    "import resource, sys\n"
    "from cnnlab.data.folder import image_folder\n"
    "from cnnlab.data.image import read_image\n"
    "start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "x = read_image(sys.argv[1], 1, (28, 28)) if sys.argv[2] == 'file' else "
    "image_folder(sys.argv[1], 1, (28, 28)).images\n"
    "assert tuple(x.shape[-2:]) == (28, 28), x.shape\n"
    "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) // 1024)\n"
)


def peak_mb(path, how: str) -> int:
    """Peak resident growth (MB) of reading `path` at 28×28 in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK, str(path), how],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return int(out.stdout.strip())


def test_a_thin_image_is_read_without_its_cover_resize(tmp_path):
    """Peak resident growth of reading a 1×200,000 PNG at 28×28: 327 MB before, 3 MB after;
    an image folder holding it read the same way."""
    thin = np.zeros((1, 200_000), np.uint8)
    Image.fromarray(thin).save(tmp_path / "thin.png")
    assert peak_mb(tmp_path / "thin.png", "file") < 50
    for cls in ("a", "b"):
        (tmp_path / "tree" / cls).mkdir(parents=True)
        Image.fromarray(thin).save(tmp_path / "tree" / cls / "thin.png")
        Image.fromarray(thin[:, :28]).save(tmp_path / "tree" / cls / "small.png")
    assert peak_mb(tmp_path / "tree", "folder") < 50


def test_a_thin_image_gives_pillows_cover_and_crop():
    """Cropped first, the result is Pillow's resize-then-crop to one grey level."""
    rng = np.random.default_rng(0)
    for shape, target in (((1, 3000), (28, 28)), ((2500, 3), (28, 28)), ((5, 900, 3), (16, 24))):
        img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        got = np.asarray(fit(img, target), dtype=int)
        assert got.shape[:2] == target
        assert np.abs(got - pil_cover_crop(img, *target)).max() <= 1, shape


def test_an_ordinary_image_is_resized_bit_for_bit_as_before():
    rng = np.random.default_rng(1)
    for shape, target in (((40, 60), (28, 28)), ((8, 8), (32, 32)), ((300, 200, 3), (32, 32))):
        img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        assert (np.asarray(fit(img, target), dtype=int) == pil_cover_crop(img, *target)).all()


def test_an_image_folder_reads_a_thin_image_as_predict_does(tmp_path):
    rng = np.random.default_rng(2)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(
            tmp_path / cls / "0.png"
        )
    thin = rng.integers(0, 256, (1, 20_000), dtype=np.uint8)
    Image.fromarray(thin).save(tmp_path / "a" / "thin.png")
    data = image_folder(tmp_path, size=(28, 28), channels=1)
    want = torch.from_numpy(pil_cover_crop(Image.fromarray(thin), 28, 28))
    got = [x[0].int() for x in data.images if (x[0].int() - want).abs().max() <= 1]
    assert len(got) == 1 and torch.equal(
        got[0], read_image(tmp_path / "a" / "thin.png", 1, (28, 28))[0].int()
    )
