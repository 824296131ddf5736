"""BatchNorm built with track_running_stats=False keeps no running mean and variance, so in
eval mode too it normalizes each batch by its own: one image's logits change with the
images beside it. summary lints it (`batch-statistics`) before any run; InstanceNorm (no
running statistics by default, but each image's own) and an ordinary BatchNorm stay silent;
one that sees one value per channel of one image (a BatchNorm1d on features) cannot run
on one image at all, and the error says why. Truth: the model's own eval-mode logits for an
image alone and beside another."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import summary
from cnnlab.errors import CnnlabError


def net(norm) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), norm(8), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    ).eval()  # fmt: skip


def batch_moves_logits(model: nn.Module) -> bool:
    """Whether the first image's eval-mode logits change when a second image joins it."""
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return not torch.allclose(model(x)[:1], model(x[:1]), atol=1e-5)


NORMS = {
    "batch-statistics": lambda c: nn.BatchNorm2d(c, track_running_stats=False),
    "running": nn.BatchNorm2d,
    "instance": nn.InstanceNorm2d,  # track_running_stats=False by default: per image
    "instance-affine": lambda c: nn.InstanceNorm2d(c, affine=True),
}


@pytest.mark.parametrize("norm", list(NORMS))
def test_the_lint_fires_where_the_batch_moves_an_images_logits(norm):
    model = net(NORMS[norm])
    found = [w for w in summary(model, (3, 16, 16)).warnings if w.code == "batch-statistics"]
    assert bool(found) == batch_moves_logits(model) == (norm == "batch-statistics")
    if found:
        assert found[0].layer == "1"
        assert "track_running_stats=True" in found[0].message and " 1:" in found[0].message


def test_it_names_each_such_layer_that_runs_and_no_other():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3)
            self.bn1 = nn.BatchNorm2d(8, track_running_stats=False)
            self.bn2 = nn.BatchNorm2d(8, track_running_stats=False)
            self.unused = nn.BatchNorm2d(8, track_running_stats=False)  # never called
            self.head = nn.Linear(8, 10)

        def forward(self, x):
            return self.head(self.bn2(self.bn1(self.stem(x)).relu()).mean((2, 3)))

    (lint,) = [w for w in summary(Net(), (3, 16, 16)).warnings if w.code == "batch-statistics"]
    assert lint.layer == "bn1" and "bn1, bn2:" in lint.message and "unused" not in lint.message


def test_one_value_per_channel_fails_with_the_reason_not_the_input_size():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 16),
        nn.BatchNorm1d(16, track_running_stats=False), nn.Linear(16, 10),
    ).eval()  # fmt: skip
    with pytest.raises(ValueError):  # torch's own forward of one image
        with torch.no_grad():
            model(torch.randn(1, 3, 16, 16))
    with pytest.raises(CnnlabError) as err:
        summary(model, (3, 16, 16))
    text = str(err.value)
    assert "\n" not in text and "layer 4 (BatchNorm1d)" in text
    assert "track_running_stats=True" in text and "check the input size" not in text


def test_another_failure_of_such_a_layer_is_not_put_on_its_statistics():
    """A channel count that does not fit (16 channels into a BatchNorm of 8) is torch's own
    refusal (its forward raises too), not 'one value per channel: no input size fits'."""
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(8, track_running_stats=False))
    with pytest.raises(RuntimeError):  # torch's own forward
        with torch.no_grad():
            model.eval()(torch.randn(1, 3, 16, 16))
    with pytest.raises(CnnlabError) as err:
        summary(model, (3, 16, 16))
    assert "running statistics" not in str(err.value) and "layer 1 (BatchNorm2d)" in str(err.value)
