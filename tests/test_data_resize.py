"""One resize policy for tensors and files: a run trained on a named data set at another
size (`--input 1,32,32` on 8×8 digits, LeNet-5's 32×32 on 28×28 Fashion-MNIST) sees its
images resized by `resize_crop`; `predict`, `explain` and image folders read files through
`data.image.fit`. They were antialiased bilinear and Pillow's bicubic: the same test image
saved as a PNG reached the model up to 48 grey levels apart (mean 7), and predict's
probabilities differed from eval's. A thin image is cropped before it is resized."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from cnnlab.data import load_dataset, read_images_sized, resize_crop
from cnnlab.data.folder import image_folder
from cnnlab.data.image import fit, read_image


def test_a_file_is_resized_as_the_data_set_tensors_are(tmp_path):
    """Truth: `resize_crop` (the tensors' policy) of the same uint8 images; the files' path
    may differ by rounding only (one grey level)."""
    images = load_dataset("digits", "test").images[:40]  # (40, 1, 8, 8) uint8
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(img[0].numpy()).save(paths[-1])
    for size in ((32, 32), (12, 20), (6, 6)):
        from_files, _ = read_images_sized(paths, 1, size)
        want = resize_crop(images, size)
        assert (from_files.int() - want.int()).abs().max() <= 1, size


def test_an_image_folder_resized_on_load_matches_the_tensor_policy(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / cls / f"{i}.png")
    whole = image_folder(tmp_path)
    resized = image_folder(tmp_path, size=(16, 16))
    assert (resized.images.int() - resize_crop(whole.images, (16, 16)).int()).abs().max() <= 1
    assert torch.equal(resized.labels, whole.labels)


def test_a_folder_of_mixed_sizes_tells_a_model_from_code_to_give_input(tmp_path, capsys):
    """`cnnlab train --model` on a folder of mixed sizes was told 'training resizes to the
    model's input by itself', which code without --input has not said; the message names
    --input, and with it the same folder trains."""
    from cnnlab.cli import main

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(4):
            shape = (12, 12, 3) if i % 2 else (10, 14, 3)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / cls / f"{i}.png")
    (tmp_path / "net.py").write_text(
        "from torch import nn\n\ndef make():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), "
        "nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))\n"
    )
    args = ["train", "--model", f"{tmp_path / 'net.py'}:make", "--data", str(tmp_path / "data"),
            "--epochs", "1", "--batch-size", "2", "--quiet", "--out"]  # fmt: skip
    assert main([*args, str(tmp_path / "run")]) == 2
    assert "--input C,H,W" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "run"), "--input", "3,12,12"]) == 0


# A thin image is cropped before it is resized: `fit` covered 28×28 by resizing a 274-byte
# 1×200,000 PNG to 28×5,600,000 first, so `cnnlab predict RUN thin.png` peaked at 590 MB
# resident (260 MB for a 28×28 file). Truth: Pillow's own resize-then-crop of the same image,
# and the process's peak resident memory.


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
