"""explain.overlay on what a notebook holds: NumPy arrays (matplotlib's) and channels-last
images are refused naming the call that fixes them (NumPy raised AttributeError
'numpy.ndarray' object has no attribute 'dim'; a (H, W, 3) image was told it needs
(1|3, H, W) without the permute), and the fixed call gives the formula's picture,
(1 − α)·image + α·jet(heat)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib import colormaps

from cnnlab import explain
from cnnlab.errors import CnnlabError


def _pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((12, 10, 3), dtype=np.float32), rng.random((12, 10), dtype=np.float32)


def _formula(image_hwc: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> torch.Tensor:
    jet = colormaps["jet"](heat)[..., :3]
    return torch.from_numpy((1 - alpha) * image_hwc + alpha * jet).permute(2, 0, 1).float()


@pytest.mark.parametrize(
    ("image", "heat", "says"),
    [
        ("numpy", "tensor", "got ndarray: pass torch.from_numpy(image)"),
        ("tensor", "numpy", "got ndarray: pass torch.from_numpy(heat)"),
        ("hwc", "tensor", "channels last: give image.permute(2, 0, 1)"),
        ("bhwc", "batch", "channels last: give image.permute(0, 3, 1, 2)"),
    ],
)  # fmt: skip
def test_what_a_notebook_holds_is_refused_naming_the_fix(image, heat, says):
    img, h = _pair()
    images = {
        "numpy": img.transpose(2, 0, 1),
        "tensor": torch.from_numpy(img).permute(2, 0, 1),
        "hwc": torch.from_numpy(img),
        "bhwc": torch.from_numpy(img)[None].expand(2, -1, -1, -1),
    }
    heats = {"numpy": h, "tensor": torch.from_numpy(h), "batch": torch.from_numpy(h)[None, ...]}
    with pytest.raises(CnnlabError) as error:
        explain.overlay(
            images[image], heats[heat].expand(2, -1, -1) if heat == "batch" else heats[heat]
        )
    assert says in str(error.value)


def test_the_fixed_call_draws_the_formula():
    img, h = _pair()
    got = explain.overlay(torch.from_numpy(img).permute(2, 0, 1), torch.from_numpy(h))
    assert torch.allclose(got, _formula(img, h), atol=1e-6)
