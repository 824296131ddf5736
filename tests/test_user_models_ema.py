"""Models from code under training's EMA copy. A module that caches a tensor derived from its
weights in eval mode and drops it in `.train()` (Hugging Face's and timm's LeViT:
`attention_bias_cache`) must be evaluated with its current weights. The EMA copy stays in eval
mode while its weights move in place, so every epoch after the first was validated, and the
run's test accuracy measured, with the first validation's biases; a run opened into a module
that had run in eval mode kept the factory's biases. Truth: the same module in train mode,
which reads its weights directly (no BatchNorm or dropout here, so both modes compute the same
function). A model that keeps a tensor on itself in forward is copied with that tensor
detached."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.train import TrainConfig, load_run, train
from cnnlab.train.state import EMA, model_copy


class CachedBias(nn.Module):
    """A conv whose per-channel bias comes from a table, cached at the first eval-mode call
    and cleared in train(), as LeViT's attention biases are."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.table = nn.Parameter(torch.zeros(4))
        self.fc = nn.Linear(4, 10)
        self.cache: dict[str, torch.Tensor] = {}

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            self.cache = {}
        return self

    def bias(self) -> torch.Tensor:
        if self.training:
            return self.table * 3
        if "bias" not in self.cache:
            self.cache["bias"] = self.table.detach() * 3
        return self.cache["bias"]

    def forward(self, x):
        h = torch.relu(self.conv(x) + self.bias()[None, :, None, None])  # (B, 4, H, W)
        return self.fc(h.mean((2, 3)))


def truth(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's function of its current weights: train mode, no cache."""
    with torch.no_grad():
        return model.train()(x)


def test_the_ema_copy_is_evaluated_with_its_current_weights():
    torch.manual_seed(0)
    model = CachedBias()
    ema = EMA(model, decay=0.5)
    x = torch.randn(3, 1, 6, 6)
    with torch.no_grad():
        ema.evaluated(x)  # a validation: the cache holds the zero table's bias
        model.table.add_(1.0)
        ema.update(model, t=100)
        got = ema.evaluated(x)
    assert not ema.model.training
    torch.testing.assert_close(got, truth(ema.model, x))


def test_a_run_reports_and_reopens_the_accuracy_of_its_weights(tmp_path):
    """Three validated epochs: the test accuracy training reports is that of the saved
    weights, and a module that ran in eval mode before the run was loaded into it computes
    with the loaded weights."""
    torch.manual_seed(0)
    config = TrainConfig(epochs=3, batch_size=64, flip=False, tta=False, precision="fp32", lr=0.3)
    result = train(CachedBias(), "digits", tmp_path / "run", config)
    fresh = CachedBias().eval()
    with torch.no_grad():
        fresh(torch.zeros(1, 1, 8, 8))  # the factory's own eval-mode call fills the cache
    run = load_run(tmp_path / "run", model=fresh)
    test = run.dataset("test")
    x, y = run.preprocess(test.images), test.labels
    with torch.no_grad():
        opened = run.model(x)
    torch.testing.assert_close(opened, truth(run.model, x))
    accuracy = (truth(run.model, x).argmax(1) == y).float().mean().item()
    assert abs(result["test_acc"] - accuracy) < 1e-6


def test_a_train_override_that_returns_nothing_is_still_reloaded():
    """nn.Module.train returns self, but an override may forget to: reloaded must not chain."""
    from cnnlab.inspect import reloaded

    class Forgetful(CachedBias):
        def train(self, mode: bool = True):
            super().train(mode)

    model = Forgetful()
    assert reloaded(model) is model
    assert not model.training and model.cache == {}


# A model whose forward keeps a tensor on itself (`self.reconstruction = self.decoder(h)`)
# trains with an EMA: the check forward with gradients left that tensor with autograd history,
# and the EMA's deepcopy refused it (RuntimeError: only graph leaves support deepcopy).


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
