"""Segmentation nets as practitioners write them: a squeeze-and-excitation gate in the
encoder, a DeepLab-style image-pooling branch beside dilated convs, a dict output. Their
global pools are gates and context, not a head: the output is a map of per-pixel scores,
so rf-small (the map entering the head sees too little, §3.2) stays silent. A classifier
on the same convs, and an autoencoder flattening its map into a code, still get it.
Truth: autograd (every input pixel reaches each output pixel: the gate's pool reads them
all) and the geometry by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import summary


class SE(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // 4, 1), nn.Conv2d(c // 4, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


def encoder() -> nn.Sequential:
    """3×3 (3 px), 3×3/2 (5 px, jump 2), then the gate: 5 px of a 64-px input."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(), SE(32),
    )  # fmt: skip


class GatedSegmenter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc, self.cls = encoder(), nn.Conv2d(32, 5, 1)

    def forward(self, x):
        y = self.cls(self.enc(x))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ImagePooling(nn.Module):
    """DeepLabV3's ASPP, small: a 1×1 branch, a dilated 3×3, the image's pooled mean."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU()
        )
        self.b1, self.b2 = nn.Conv2d(16, 8, 1), nn.Conv2d(16, 8, 3, padding=2, dilation=2)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 8, 1), nn.ReLU())
        self.proj = nn.Conv2d(24, 4, 1)

    def forward(self, x):
        f = self.enc(x)
        p = F.interpolate(self.pool(f), size=f.shape[-2:], mode="bilinear", align_corners=False)
        y = self.proj(torch.cat([self.b1(f), self.b2(f), p], 1))
        return {"out": F.interpolate(y, scale_factor=4, mode="bilinear", align_corners=False)}


def codes(model: nn.Module, size=(3, 64, 64)) -> set[str]:
    return {w.code for w in summary(model.eval(), size).warnings}


def sees_all(model: nn.Module, size=(3, 64, 64)) -> bool:
    """autograd: every input pixel reaches the output's centre pixel."""
    x = torch.randn(1, *size, requires_grad=True)
    y = model.eval()(x)
    y = y["out"] if isinstance(y, dict) else y
    y[0, 0, size[1] // 2, size[2] // 2].backward()
    return bool(x.grad[0].abs().sum(0).gt(0).all())


def test_a_segmenter_with_a_gate_has_no_head_and_no_rf_small():
    assert sees_all(GatedSegmenter())
    assert "rf-small" not in codes(GatedSegmenter())


def test_an_image_pooling_branch_is_context_not_a_head():
    assert sees_all(ImagePooling())
    assert "rf-small" not in codes(ImagePooling())


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc, self.fc = encoder()[:6], nn.Linear(32, 10)  # no gate: its units see 5 px

    def forward(self, x):
        return self.fc(self.enc(x).mean((2, 3)))


class AutoEncoder(nn.Module):
    """A code made by flattening a 5-px map (the zoo's MONAI VarAutoEncoder's shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.code, self.dec = nn.Linear(8 * 32 * 32, 16), nn.Linear(16, 3 * 64 * 64)

    def forward(self, x):
        z = self.code(self.enc(x).flatten(1))
        return self.dec(z).view(-1, 3, 64, 64), z


def test_a_classifier_and_an_autoencoders_code_still_get_rf_small():
    """The classifier's mean reads 5-px units (3×3, then 3×3/2); the code's flatten 3-px."""
    assert "rf-small" in codes(Classifier())
    assert "rf-small" in codes(AutoEncoder())
