"""Linear probes, activation maximization, filters, feature maps and the effective receptive
field, on a CNN trained here for a few seconds on a Fashion-MNIST subset and on hand-made nets.
Truths: raw-pixel probe, the data set's own images, torch ops, the 7×7 of three 3×3 convs."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain import (
    activation_maximization,
    effective_receptive_field,
    feature_maps,
    filters,
    linear_probe,
    save_grid,
)
from cnnlab.explain.erf import centred_side, support_side
from cnnlab.explain.probe import default_probe_layers, extract_features, pool_features
from test_explain_models import images, resnet_pair

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def read_idx(name: str, n: int, offset: int) -> np.ndarray:
    with gzip.open(FMNIST / name) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)[: n * (784 if offset == 16 else 1)]


@pytest.fixture(scope="module")
def fmnist():
    """(x_train, y_train, x_test, y_test): 6000 + 1000 images, normalized float (N, 1, 28, 28)."""
    if not FMNIST.exists():
        pytest.fail(f"Fashion-MNIST not found at {FMNIST} (Debian package dataset-fashion-mnist)")
    xtr = read_idx("train-images-idx3-ubyte.gz", 6000, 16).reshape(-1, 1, 28, 28)
    ytr = read_idx("train-labels-idx1-ubyte.gz", 6000, 8)
    xte = read_idx("t10k-images-idx3-ubyte.gz", 1000, 16).reshape(-1, 1, 28, 28)
    yte = read_idx("t10k-labels-idx1-ubyte.gz", 1000, 8)

    def norm(a):
        return (torch.from_numpy(a.copy()).float() / 255 - 0.286) / 0.353

    return (
        norm(xtr),
        torch.from_numpy(ytr.astype(np.int64)),
        norm(xte),
        torch.from_numpy(yte.astype(np.int64)),
    )


@pytest.fixture(scope="module")
def trained(fmnist):
    """A small CNN with in-place ReLUs, trained 2 epochs (a few seconds on 2 cores)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    xtr, ytr, _, _ = fmnist
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(2):
        for i in torch.randperm(len(xtr)).split(100):
            opt.zero_grad()
            F.cross_entropy(model(xtr[i]), ytr[i]).backward()
            opt.step()
    return model.eval()


def test_probe_last_block_beats_raw_pixels(trained, fmnist):
    xtr, ytr, xte, yte = fmnist
    layers = ["7", "2", "10", "5"]
    acc = linear_probe(trained, (xtr[:3000], ytr[:3000]), (xte, yte), layers, epochs=50)
    assert list(acc) == ["input", "2", "5", "7", "10"]  # depth order
    assert acc["7"] > acc["input"] + 0.01, acc  # the last conv block's ReLU
    assert all(0.0 <= a <= 1.0 for a in acc.values())


def test_probe_features_from_one_pass_equal_separate_passes(trained, fmnist):
    """The hooked features of all layers in one pass == each layer's features in its own pass,
    and equal a truth computed with torch ops: the first conv's output, pooled."""
    x, y = fmnist[0][:64], fmnist[1][:64]
    together, labels = extract_features(trained, (x, y), ["input", "0", "4", "10"], batch_size=20)
    for name in ["0", "4", "10"]:
        alone, _ = extract_features(trained, (x, y), [name])
        torch.testing.assert_close(together[name], alone[name])
    conv = F.conv2d(x, trained[0].weight, trained[0].bias, padding=1)  # pre-ReLU: its own
    torch.testing.assert_close(together["0"], F.adaptive_avg_pool2d(conv, 8).flatten(1))
    torch.testing.assert_close(together["input"], x.flatten(1))
    assert torch.equal(labels, y)


def test_default_probe_layers_are_the_blocks_in_forward_order():
    model, _ = resnet_pair()
    assert default_probe_layers(model, images(1)) == [
        "conv1", "bn1", "relu", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "avgpool", "fc"
    ]  # fmt: skip


def test_pool_features_bounds_the_size():
    a = torch.randn(2, 64, 14, 14)
    assert pool_features(a, 1024).shape == (2, 64 * 4 * 4)
    assert pool_features(a, 10).shape == (2, 64)  # at least 1×1
    assert pool_features(torch.randn(2, 3, 5, 5), 4096).shape == (2, 75)  # never upsampled


def test_probe_bad_input(trained, fmnist):
    xtr, ytr, xte, yte = fmnist
    with pytest.raises(CnnlabError, match="valid layer names"):
        linear_probe(trained, (xtr[:50], ytr[:50]), (xte[:50], yte[:50]), layers=["nope"])
    with pytest.raises(CnnlabError, match="labels"):
        linear_probe(trained, xtr[:50], xte[:50])


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 3),
    )  # fmt: skip


def test_probe_leaves_the_global_rng_alone():
    """A library call must not reseed or advance torch's global RNG (the user's randomness)."""
    net = small_net()
    x, y = torch.randn(24, 1, 8, 8), torch.arange(24) % 3
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    linear_probe(net, (x, y), (x, y), epochs=3)
    assert torch.equal(torch.rand(3), expected)


def test_probe_of_a_layer_named_twice_probes_it_once():
    net = small_net()
    x, y = torch.randn(12, 1, 8, 8), torch.arange(12) % 3
    # `cnnlab probe RUN --layers 1 1` was a traceback: 24 feature rows against 12 labels
    acc = linear_probe(net, (x, y), (x, y), ["1", "1", "input"], epochs=2)
    assert list(acc) == ["input", "1"]
    assert acc == linear_probe(net, (x, y), (x, y), ["1"], epochs=2)


def test_probe_rejects_a_budget_or_labels_it_cannot_use():
    net = small_net()
    x, y = torch.randn(12, 1, 8, 8), torch.arange(12) % 3
    for bad in ({"epochs": 0}, {"cap": 0}, {"batch_size": 0}):
        with pytest.raises(CnnlabError, match=">= 1"):
            linear_probe(net, (x, y), (x, y), **bad)
    with pytest.raises(CnnlabError, match="class index >= 0"):
        linear_probe(net, (x, y - 1), (x, y), epochs=1)


def test_erf_and_actmax_reject_impossible_settings():
    net = small_net()
    with pytest.raises(CnnlabError, match="mass"):
        effective_receptive_field(net, "0", (1, 8, 8), n=2, mass=1.5)
    with pytest.raises(CnnlabError, match="input_size"):
        effective_receptive_field(net, "0", (8, 8), n=2)
    with pytest.raises(CnnlabError, match="steps"):
        activation_maximization(net, "0", [0], steps=0, input_size=(1, 8, 8))


@pytest.mark.parametrize("objective", ["centre", "mean"])
def test_activation_maximization_beats_every_data_image(trained, fmnist, objective):
    """On the last conv block's ReLU, the optimised image of each channel activates its centre
    unit more than any of 1000 test images, with pixels kept in the data's range. (The channel
    mean is harder: channel 5 stays at about half the data's best, a local optimum; there we
    only check the objective against torch.)"""
    xte = fmnist[2]
    before = [p.requires_grad for p in trained.parameters()]
    chans = [0, 5, 11]
    res = activation_maximization(trained, "7", chans, steps=60, data=xte, objective=objective)
    assert res.images.shape == (3, 1, 28, 28)
    assert res.images.min() >= xte.min() and res.images.max() <= xte.max()  # value range
    if objective == "centre":
        assert (res.ratio > 1).all(), res.ratio

    def truth(x):  # the channels' activations at layer 7 with torch ops: (N, 3, 7, 7)
        with torch.no_grad():
            a = trained[:8](x)[:, chans]
        return a[:, :, 3, 3] if objective == "centre" else a.mean((2, 3))

    torch.testing.assert_close(res.data_max, truth(xte).amax(0))
    torch.testing.assert_close(res.activation, truth(res.images).diagonal())
    assert [p.requires_grad for p in trained.parameters()] == before


def test_jitter_follows_a_shallow_unit_instead_of_washing_it_out(trained, fmnist):
    """Layer 1 (first ReLU, a 3-px field, jump 1): the image is rolled by up to ±2 px each
    step, more than the field's half-width; the objective follows its unit, so one short
    start still beats every test image (before: ~0× the data max), and jitter on a unit whose
    map moves exactly with the image changes nothing."""
    xte = fmnist[2]
    runs = [
        activation_maximization(trained, "1", [0, 3, 7], steps=40, data=xte, restarts=1, jitter=j)
        for j in (2, 0)
    ]
    assert (runs[0].ratio > 1).all(), runs[0].ratio
    torch.testing.assert_close(runs[0].activation, runs[1].activation, rtol=1e-4, atol=1e-4)


def test_activation_maximization_fourier_and_bad_channels(trained):
    res = activation_maximization(
        trained, "3", [1, 2], steps=30, fourier=True, input_size=(1, 28, 28)
    )
    assert res.images.shape == (2, 1, 28, 28) and res.ratio is None
    assert torch.isfinite(res.activation).all()
    with pytest.raises(CnnlabError, match=r"0\.\.31"):
        activation_maximization(trained, "3", [32], steps=1, input_size=(1, 28, 28))
    with pytest.raises(CnnlabError, match="input_size"):
        activation_maximization(trained, "3", [0], steps=1)
    with pytest.raises(CnnlabError, match="channels is empty") as error:
        activation_maximization(trained, "3", [], steps=1, input_size=(1, 28, 28))
    assert "0.." not in str(error.value)  # "must lie in 0..31" said nothing about emptiness
    with pytest.raises(CnnlabError, match="restarts"):
        activation_maximization(trained, "3", [0], steps=1, input_size=(1, 28, 28), restarts=0)


@pytest.mark.parametrize(
    "call",
    [
        lambda net: activation_maximization(net, "0", [0], steps=1, input_size=(1, 8, 8)),
        lambda net: effective_receptive_field(net, "0", (1, 8, 8), n=2),
        lambda net: linear_probe(net, (torch.randn(6, 1, 8, 8), torch.arange(6) % 3),
                                 (torch.randn(3, 1, 8, 8), torch.arange(3)), epochs=1),
    ],
    ids=["actmax", "erf", "probe"],
)  # fmt: skip
def test_gradient_methods_inside_inference_mode_say_so(call):
    """They raised a raw RuntimeError ("does not require grad") inside torch.inference_mode()."""
    with torch.inference_mode(), pytest.raises(CnnlabError, match="outside the torch.inference"):
        call(small_net())


def test_erf_of_three_3x3_convs_lies_within_7x7():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3, padding=1),
    )  # fmt: skip
    erf = effective_receptive_field(net, "4", (1, 15, 15), n=16)
    assert erf.gradient.shape == (15, 15)
    outside = erf.gradient.clone()
    outside[4:11, 4:11] = 0  # the 7×7 around the centre pixel (7, 7)
    assert outside.abs().max() == 0
    assert erf.theoretical == 7
    assert 1 <= erf.measured <= 7
    assert erf.measured < 7 or erf.gradient[4:11, 4:11].sum() > 0  # effective ≤ theoretical


def test_erf_theoretical_of_a_block_comes_from_summary_and_bounds_the_gradient():
    """ResNet stage layer1 (stem 3×3 + two blocks of two 3×3): RF 11 (summary's row of the
    stage's last leaf); the gradient's support on a 24×24 input is exactly that 11×11."""
    model, _ = resnet_pair()
    erf = effective_receptive_field(model, "layer1", (3, 24, 24), n=4)
    assert (erf.theoretical, erf.theoretical_source) == (11, "cnnlab.summary")
    assert support_side(erf.gradient) == 11
    assert erf.measured <= 11


class ChannelShuffle(nn.Module):
    """ShuffleNet's pattern: grouped 3×3 convs with the channels shuffled between them by
    view → transpose → reshape, which moves channels and leaves every pixel where it was."""

    def __init__(self, groups: int = 2, width: int = 8):
        super().__init__()
        self.groups = groups
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.mid = nn.Conv2d(width, width, 3, padding=1, groups=groups)
        self.last = nn.Conv2d(width, width, 3, padding=1, groups=groups)

    def shuffle(self, x):
        b, c, h, w = x.shape
        return x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x):
        x = self.shuffle(F.relu(self.stem(x)))
        x = self.shuffle(F.relu(self.mid(x)))
        return self.last(x)


def test_erf_through_a_channel_shuffle_keeps_the_field_of_three_convs():
    """Three 3×3 convs: a 7×7 field (§3.2), whether or not channels are shuffled between them.
    Truths: the formula and the support of autograd's input gradient, which is exactly 7×7."""
    torch.manual_seed(0)
    erf = effective_receptive_field(ChannelShuffle(), "last", (1, 15, 15), n=16)
    assert support_side(erf.gradient) == 7
    assert (erf.theoretical, erf.theoretical_source) == (7, "cnnlab.summary")
    assert 1 <= erf.measured <= 7


def test_centred_side_on_known_masses():
    g = torch.zeros(9, 9)
    g[4, 4] = 1.0
    assert centred_side(g) == 1
    g[3:6, 3:6] = 1.0
    assert centred_side(g) == 3
    g = torch.ones(9, 9)
    assert centred_side(g, 0.95) == 9  # 8×8 holds 64/81 < 95 %


def test_filters_and_feature_maps_equal_torch(tmp_path):
    model, copy = resnet_pair()
    f = filters(model)
    w = model.conv1.weight.detach()
    lo = w.amin((1, 2, 3), keepdim=True)
    torch.testing.assert_close(f, (w - lo) / (w.amax((1, 2, 3), keepdim=True) - lo))
    with pytest.raises(CnnlabError, match="not an nn.Conv2d"):
        filters(model, "bn1")
    x = images(2)
    maps = feature_maps(model, x, ["layer1.0.bn2", "layer2"])
    seen = {}
    copy.layer1[0].bn2.register_forward_hook(lambda m, i, o: seen.setdefault("a", o))
    with torch.no_grad():
        copy(x)
    torch.testing.assert_close(maps["layer1.0.bn2"], seen["a"])  # own output, not overwritten
    assert maps["layer2"].shape == (2, 16, 8, 8)
    path = save_grid(f, tmp_path / "filters.png", nrow=4, scale=2)
    assert Image.open(path).size == (4 * 7 + 1, 2 * 7 + 1)  # 8 tiles of 6 px + 1 px gaps


class HeadFirst(nn.Module):
    """Registers its head conv and a side branch before its stem; the images meet the stem."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(8, 5, 1)
        self.branch = nn.Conv2d(8, 8, 1)
        self.stem = nn.Sequential(nn.Identity(), nn.Conv2d(3, 8, 3, padding=1))

    def forward(self, x):
        h = self.stem(x)
        return self.head(h + self.branch(h)).mean((2, 3))  # (B, 5)


@pytest.mark.parametrize("x", [None, torch.zeros(2, 3, 12, 12)], ids=["no-x", "x"])
def test_filters_default_is_the_first_conv_in_forward_order(x):
    """The stem's kernels, not the first conv registered (the head). Truth: the stem's weight
    scaled per filter with torch ops; the model's mode and hooks are as before."""
    torch.manual_seed(0)
    model = HeadFirst().train()
    w = model.stem[1].weight.detach()
    lo = w.amin((1, 2, 3), keepdim=True)
    torch.testing.assert_close(filters(model, x=x), (w - lo) / (w.amax((1, 2, 3), True) - lo))
    assert model.training and not any(m._forward_pre_hooks for m in model.modules())
    with pytest.raises(CnnlabError, match="no nn.Conv2d"):
        filters(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


def test_erf_prints_its_numbers_not_its_gradient():
    """A learner reads `ERF(...)` in a REPL: the two sides must show, not 4,096 numbers."""
    from cnnlab.explain.erf import ERF

    erf = ERF("layer2", torch.zeros(64, 64), 11, 13, "cnnlab.summary", 0.95)
    text = repr(erf)
    assert "measured=11" in text and "theoretical=13" in text and "64×64" in text
    assert len(text) < 200
