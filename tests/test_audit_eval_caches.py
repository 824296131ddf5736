"""A module that caches a tensor derived from its weights in eval mode and drops it in
`.train()` (Hugging Face's and timm's LeViT: `attention_bias_cache`) must be evaluated with
its current weights. The EMA copy stays in eval mode while its weights move in place, so
every epoch after the first was validated, and the run's test accuracy measured, with the
first validation's biases; a run opened into a module that had run in eval mode kept the
factory's biases. Truth: the same module in train mode, which reads its weights directly
(no BatchNorm or dropout here, so both modes compute the same function)."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.train import TrainConfig, load_run, train
from cnnlab.train.state import EMA


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
