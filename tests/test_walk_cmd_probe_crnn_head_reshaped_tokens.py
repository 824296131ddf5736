"""The CRNN head's rule (test_walk_cmd_probe_crnn_head) on tokens: a view or reshape that
keeps the last dim of tokens holding their channels last keeps them last. Hugging Face's
SegFormer ends each stage with `x.reshape(B, H, W, -1).permute(0, 3, 1, 2)`: the reshape's
output was read as (N, C, ...), so the permute put the 'channels' on dim 2 and
`explain.feature_maps` gave its (B, C, H, W) stage output as (B, H, C, W). A Swin block
views its (B, H·W, C) tokens as (B, H, W, C) and back: the block's output was read with its
H·W tokens as channels. Truth: torch's own output of the layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain
from cnnlab.explain.probe import extract_features

pytestmark = pytest.mark.usefixtures("one_thread")

SIDE, DIM = 4, 6  # a 4 × 4 grid of 6-channel tokens


class Stage(nn.Module):
    """SegFormer's stage: patches → (B, N, C) tokens → norm, MLP → back to (B, C, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, DIM, 4, stride=4)
        self.norm = nn.LayerNorm(DIM)
        self.mlp = nn.Linear(DIM, DIM)

    def forward(self, x):
        b = x.shape[0]
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # (B, N, C)
        tokens = self.mlp(self.norm(tokens))
        return tokens.reshape(b, SIDE, SIDE, -1).permute(0, 3, 1, 2).contiguous()


class Window(nn.Module):
    """Swin's block: (B, N, C) tokens viewed as their (B, H, W, C) grid, a Linear on it, and
    viewed back to (B, N, C)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, tokens):
        b, n, c = tokens.shape
        grid = self.proj(tokens).view(b, SIDE, SIDE, c)
        return torch.relu(grid).view(b, n, c)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stage = Stage()
        self.window = Window()
        self.head = nn.Linear(DIM, 3)

    def forward(self, x):
        maps = self.stage(x)
        tokens = self.window(maps.flatten(2).transpose(1, 2))
        return self.head(tokens.mean(1))


def _model() -> Net:
    torch.manual_seed(0)
    return Net().eval()


def _data(n: int = 5):
    torch.manual_seed(1)
    return torch.randn(n, 3, 4 * SIDE, 4 * SIDE), torch.randint(0, 3, (n,))


def _outputs(model: Net, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        maps = model.stage(x)
        return {"stage": maps, "window": model.window(maps.flatten(2).transpose(1, 2))}


def test_feature_maps_of_a_segformer_stage_are_its_own_output():
    model = _model()
    x, _ = _data()
    got = explain.feature_maps(model, x, ["stage"])["stage"]
    assert torch.equal(got, _outputs(model, x)["stage"])  # (B, C, H, W) as torch gives it


def test_probe_features_of_a_swin_block_are_per_channel():
    model = _model()
    x, y = _data()
    tokens = _outputs(model, x)["window"]  # (B, N, C)
    got, _ = extract_features(model, (x, y), ["window"], cap=10**6)
    assert torch.allclose(got["window"], tokens.transpose(1, 2).flatten(1), atol=1e-6)
    pooled, _ = extract_features(model, (x, y), ["window"], cap=DIM)  # one position each
    assert torch.allclose(pooled["window"], tokens.mean(1), atol=1e-6)
