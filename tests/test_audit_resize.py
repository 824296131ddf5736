"""One resize policy for tensors and files: a run trained on a named data set at another
size (`--input 1,32,32` on 8×8 digits, LeNet-5's 32×32 on 28×28 Fashion-MNIST) sees its
images resized by `resize_crop`; `predict`, `explain` and image folders read files through
`data.image.fit`. They were antialiased bilinear and Pillow's bicubic: the same test image
saved as a PNG reached the model up to 48 grey levels apart (mean 7), and predict's
probabilities differed from eval's."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from cnnlab.data import load_dataset, read_images_sized, resize_crop
from cnnlab.data.folder import image_folder


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
