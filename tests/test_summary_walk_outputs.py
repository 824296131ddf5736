"""What a model returns beside its logits and what its head reads, as practitioners write
them: predictions returned with the scores (`logits, logits.argmax(1)`), a gather of each
position's strongest channel, a spatial transformer's `F.affine_grid`, an nn.Bilinear fusing
two pooled branches. Each followed: no `unfollowed` lint about a tensor that has its field.
Truth: autograd's extent of the output's centre unit, the geometry by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import summary


def unfollowed(model: nn.Module, size: tuple[int, ...]) -> list:
    return [w for w in summary(model.eval(), size).warnings if w.code == "unfollowed"]


class MapAndLabels(nn.Module):
    """A segmentation head returning its scores and the label map (inference-ready)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y, y.argmax(1)


class LogitsAndClass(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = self.fc(self.conv(x).amax((2, 3)))
        return y, y.argmin(-1)


def test_predictions_returned_beside_the_scores_raise_no_unfollowed():
    assert unfollowed(MapAndLabels(), (3, 16, 16)) == []
    assert unfollowed(LogitsAndClass(), (3, 16, 16)) == []


class StrongestChannel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.out = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        f = self.conv(x)
        return self.out(f.gather(1, f.argmax(1, keepdim=True)))


def test_a_gather_at_the_argmax_channel_keeps_the_field():
    model = StrongestChannel().eval()
    s = summary(model, (3, 12, 12))
    assert not [w for w in s.warnings if w.code == "unfollowed"], s.warnings
    x = torch.randn(1, 3, 12, 12, requires_grad=True)
    y = model(x)
    y[0, 0, 6, 6].backward()
    rows = int(x.grad[0].abs().sum((0, 2)).gt(0).sum())
    assert [r.receptive_field for r in s.rows] == [3, 5] == [3, rows]


class STN(nn.Module):
    """The PyTorch tutorial's spatial transformer network on MNIST."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Sequential(
            nn.Conv2d(1, 8, 7), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(8, 10, 5),
            nn.MaxPool2d(2), nn.ReLU(),
        )  # fmt: skip
        self.fc_loc = nn.Sequential(nn.Linear(90, 32), nn.ReLU(), nn.Linear(32, 6))
        self.conv = nn.Conv2d(1, 10, 5)
        self.fc = nn.Linear(10 * 12 * 12, 10)

    def forward(self, x):
        theta = self.fc_loc(self.loc(x).view(-1, 90)).view(-1, 2, 3)
        grid = F.affine_grid(theta, x.size(), align_corners=False)
        x = F.grid_sample(x, grid, align_corners=False)
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return F.log_softmax(self.fc(x.flatten(1)), dim=1)


def test_a_spatial_transformers_grid_is_followed_and_its_rows_see_the_image():
    s = summary(STN().eval(), (1, 28, 28))
    assert not [w for w in s.warnings if w.code == "unfollowed"], s.warnings
    field = {r.name: r.receptive_field for r in s.rows}
    assert field["conv"] >= 28  # it reads a map sampled anywhere in the image


class BilinearFusion(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.Tanh(), nn.AdaptiveAvgPool2d(1))
        self.b = nn.Sequential(nn.Conv2d(3, 8, 5, 2, 2), nn.ReLU(), nn.AdaptiveMaxPool2d(1))
        self.fuse = nn.Bilinear(8, 8, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(torch.relu(self.fuse(self.a(x).flatten(1), self.b(x).flatten(1))))


def test_a_bilinear_fusion_of_two_pooled_branches_sees_the_whole_image():
    s = summary(BilinearFusion().eval(), (3, 32, 32))
    assert not [w for w in s.warnings if w.code == "unfollowed"], s.warnings
    field = {r.name: r.receptive_field for r in s.rows}
    assert field["fuse"] >= 32 and field["head"] == field["fuse"]
    torch.manual_seed(0)
    model = BilinearFusion().eval()
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    model.fuse(model.a(x).flatten(1), model.b(x).flatten(1))[0, 0].backward()
    assert bool(x.grad[0].abs().sum(0).gt(0).all())  # autograd: every pixel reaches it
