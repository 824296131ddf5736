"""BatchNorm statistics recomputed after training (train/norm_stats.py), against the formula
computed with PyTorch's own functional ops, and the short run it was made for."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.train import TrainConfig, train
from cnnlab.train.norm_stats import norm_layers, recalibrate, sample


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.Dropout(0.5),  # must be off while statistics are taken
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 3, 3),
        nn.BatchNorm2d(3),
    )


def expected_stats(net: nn.Sequential, images: torch.Tensor, batch: int):
    """Per BatchNorm: the mean over whole batches of each batch's mean and unbiased variance,
    each batch normalized by its own statistics (training's normalization), dropout off."""
    conv1, _, bn1, _, conv2, _ = net
    n = max(len(images) // batch * batch, 1)
    batch = min(batch, len(images))
    sums = {1: [], 2: []}
    for start in range(0, n, batch):
        x = images[start : start + batch]
        a = conv1(x)
        sums[1].append((a.mean((0, 2, 3)), a.var((0, 2, 3), unbiased=True)))
        h = F.relu(F.batch_norm(a, None, None, bn1.weight, bn1.bias, training=True))
        b = conv2(h)
        sums[2].append((b.mean((0, 2, 3)), b.var((0, 2, 3), unbiased=True)))
    return {
        k: (torch.stack([m for m, _ in v]).mean(0), torch.stack([s for _, s in v]).mean(0))
        for k, v in sums.items()
    }


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 90), batch=st.integers(1, 40), scale=st.floats(0.1, 5))
def test_statistics_are_the_average_over_whole_batches(n, batch, scale):
    net = small_net()
    images = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(n)) * scale + 1
    if min(batch, n) * 4 * 4 < 2:  # BatchNorm needs two values per channel, as in training
        return
    with torch.no_grad():
        want = expected_stats(net, images, batch)
    assert recalibrate(net, images, batch) == 2
    for k, bn in ((1, net[2]), (2, net[5])):
        torch.testing.assert_close(bn.running_mean, want[k][0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_var, want[k][1], rtol=1e-4, atol=1e-5)


def test_weights_modes_and_momenta_are_restored():
    net = small_net().train()
    net[2].momentum = 0.3
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k}
    recalibrate(net, torch.randn(64, 1, 8, 8), 16)
    assert all(m.training for m in net.modules())
    assert net[2].momentum == 0.3 and net[5].momentum == 0.1
    for k, v in weights.items():
        if "num_batches" not in k:
            assert torch.equal(net.state_dict()[k], v), k
    net.eval()
    recalibrate(net, torch.randn(64, 1, 8, 8), 16)
    assert not any(m.training for m in net.modules())


def test_a_model_without_batchnorm_is_left_alone():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3))
    before = copy.deepcopy(net.state_dict())
    assert recalibrate(net, torch.randn(10, 1, 8, 8), 4) == 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    frozen = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False))
    assert norm_layers(frozen) == []


def test_sample_is_seeded_and_takes_all_when_short():
    images = torch.arange(100.0).view(100, 1, 1, 1)
    a, b = sample(images, 10, seed=3), sample(images, 10, seed=3)
    assert torch.equal(a, b) and len(a) == 10 and len(set(a.flatten().tolist())) == 10
    assert not torch.equal(a, sample(images, 10, seed=4))
    assert sample(images, 500, seed=3) is images


def test_bf16_statistics_follow_the_autocast_forward():
    """Under autocast the BatchNorm sees bf16 conv outputs, as in training."""
    net = small_net()
    images = torch.randn(64, 1, 8, 8)
    recalibrate(net, images, 32, autocast=torch.bfloat16, channels_last=True)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a = net[0](images[:32].contiguous(memory_format=torch.channels_last))
        b = net[0](images[32:].contiguous(memory_format=torch.channels_last))
    want = (a.float().mean((0, 2, 3)) + b.float().mean((0, 2, 3))) / 2
    torch.testing.assert_close(net[2].running_mean, want, rtol=1e-3, atol=1e-3)


def test_a_short_run_is_evaluated_with_statistics_of_its_own_weights():
    """20 steps of `fast` on digits: the running averages still lean on their start; recomputed
    for the weights that are evaluated, the same run scores > 90 % (15 % without)."""
    runs = {
        recal: train("fast", "digits", None, TrainConfig(epochs=2, bn_recalibrate=recal, tta=False))
        for recal in (4096, 0)
    }
    assert runs[4096]["test_acc"] > 0.9
    assert runs[4096]["val_acc"] > 0.9  # the last epoch's row is taken after recomputing
    assert runs[0]["test_acc"] < runs[4096]["test_acc"] - 0.3  # the failure it is for


def test_every_validated_epoch_reads_statistics_of_its_own_weights():
    """The EMA's weights with the live model's running averages read near chance in the first
    epochs of a short run; each validation row is taken after recomputing, so every row of
    a 3-epoch digits run is far above chance, and the first row with the averages (near
    chance) is the failure it guards against."""
    rows = {}
    for recal in (4096, 0):
        got = []
        config = TrainConfig(epochs=3, bn_recalibrate=recal, tta=False, val_fraction=0.2)
        train("fast", "digits", None, config, on_epoch=lambda row, _, got=got: got.append(row))
        rows[recal] = [row["val_acc"] for row in got]
    assert len(rows[4096]) == 3 and min(rows[4096]) > 0.5, rows
    assert rows[0][0] < rows[4096][0] - 0.3, rows


def test_a_knob_out_of_range_names_the_range():
    with pytest.raises(
        ConfigError, match=r"bn_recalibrate must be 0 \(off\) or >= 2 \(images\), got -3"
    ):
        TrainConfig(bn_recalibrate=-3)
    with pytest.raises(ConfigError, match=r"momentum must be in \[0, 1\), got 1.5"):
        TrainConfig(momentum=1.5)


def test_one_image_is_refused_before_training():
    """A batch of one image cannot give a BatchNorm on (N, C) its statistics (torch raises):
    refused in the config, not after the last epoch."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3))
    with pytest.raises(ValueError, match="more than 1 value"):
        recalibrate(net, torch.randn(1, 1, 2, 2), 8)
    with pytest.raises(ConfigError, match="bn_recalibrate 1"):
        TrainConfig(bn_recalibrate=1)
    assert TrainConfig(bn_recalibrate=2).bn_recalibrate == 2


def test_a_layer_the_eval_forward_never_reaches_keeps_its_statistics():
    """A head used only in training: its running averages are all it has (a reset would save
    mean 0, variance 1); the layers reached are recomputed."""

    class WithAux(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
            self.aux = nn.BatchNorm2d(4)

        def forward(self, x):
            h = self.body(x)
            return (h, self.aux(h)) if self.training else h

    torch.manual_seed(0)
    net = WithAux().train()
    with torch.no_grad():
        for _ in range(5):
            net(torch.randn(16, 1, 8, 8) * 3 + 2)
    before = {k: v.clone() for k, v in net.aux.state_dict().items()}
    assert recalibrate(net, torch.randn(32, 1, 8, 8) * 3 + 2, 16) == 1
    assert all(torch.equal(v, before[k]) for k, v in net.aux.state_dict().items())
    assert net.body[1].num_batches_tracked == 2


def test_a_forward_that_raises_leaves_the_statistics_as_they_were():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3))
    net[2].running_mean.fill_(0.5)
    with pytest.raises(ValueError):
        recalibrate(net, torch.randn(1, 1, 2, 2), 8)  # one image: torch's BatchNorm refuses
    assert torch.equal(net[2].running_mean, torch.full((3,), 0.5))
    assert net[2].momentum == 0.1 and net.training
