"""A model whose forward keeps a tensor on itself (`self.reconstruction = self.decoder(h)`)
trains with an EMA: the check forward with gradients left that tensor with autograd history,
and the EMA's deepcopy refused it (RuntimeError: only graph leaves support deepcopy)."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.train.state import EMA, model_copy


class SideBranch(nn.Module):
    """A classifier with a reconstruction branch whose output is kept for a training loss."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.decoder = nn.Conv2d(4, 1, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        self.reconstruction = self.decoder(h)
        self.features = [h, {"pooled": h.mean((2, 3))}]  # kept in containers too
        return self.head(h)


def test_a_kept_tensor_with_history_is_copied_detached():
    model = SideBranch()
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    ema = EMA(model, 0.9)
    copied = ema.model
    assert copied.reconstruction.grad_fn is None
    torch.testing.assert_close(copied.reconstruction, model.reconstruction.detach())
    assert copied.features[1]["pooled"].grad_fn is None
    assert model.reconstruction.grad_fn is not None  # the user's model is left as it was
    assert all(p.is_leaf for p in copied.parameters())
    shared = {id(t) for t in (*model.parameters(), *model.buffers())}
    assert not shared & {id(t) for t in (*copied.parameters(), *copied.buffers())}
    assert model_copy(nn.Linear(2, 2)).weight.is_leaf


def test_a_model_keeping_a_tensor_trains_one_epoch_with_ema(tmp_path):
    from cnnlab.train import TrainConfig, train

    config = TrainConfig(epochs=1, batch_size=64, ema=0.99, bn_recalibrate=0, tta=False)
    result = train(SideBranch(), "digits", tmp_path / "run", config)
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert result["model"] is not None
