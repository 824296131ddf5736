"""cnnlab.diagnose against independent truths: direct counts on hand-computed activations,
gradients from torch.autograd, and the notes' claims (§4.2 sigmoid vanishes, §4.3 dead ReLU)."""

from __future__ import annotations

import argparse
import json
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab import diagnose
from cnnlab.diagnose import activation_stats, dead_units, epoch_diagnostics, gradient_flow
from cnnlab.diagnose.units import pooled
from cnnlab.errors import CnnlabError


class FunctionalNet(nn.Module):
    """Written the way users write models: an in-place ReLU module and functional calls."""

    def __init__(self, dead_channel: int | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)
        if dead_channel is not None:
            with torch.no_grad():
                self.conv1.bias[dead_channel] = -1e3  # pushed far below zero: never fires

    def forward(self, x):
        x = self.act1(self.conv1(x))  # (B, 6, H, W)
        x = F.relu(self.conv2(x))  # (B, 8, H, W)
        return self.fc(x.mean(dim=(2, 3)))  # (B, 3)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock shape: one ReLU module called twice, a residual add."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


def tiny_resnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        BasicBlock(4),
        nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


def images(n: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


# --- dead units ---------------------------------------------------------------------------------


def test_forced_dead_unit_is_reported_and_no_other():
    torch.manual_seed(0)
    result = dead_units(FunctionalNet(dead_channel=2), images(64))
    names = [layer.name for layer in result.layers]
    assert names == ["act1", "relu()"]  # the module and the functional call are both found
    first, second = result.layers
    assert first.dead_channels == (2,) and first.dead == 1 and first.channels == 6
    assert first.flagged  # 1/6 > 10%
    assert second.dead == 0 and not second.flagged
    assert result.to_dict()["layers"][0]["dead_share"] == pytest.approx(1 / 6)


def test_leaky_relu_unit_never_positive_counts_as_dead():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.LeakyReLU(0.1), nn.Flatten())
    with torch.no_grad():
        model[0].bias[1] = -1e3
    (layer,) = dead_units(model, images()).layers
    assert layer.kind == "leaky_relu" and layer.dead_channels == (1,)


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 40), batch=st.integers(1, 16), seed=st.integers(0, 100))
def test_sparsity_equals_direct_count(n, batch, seed):
    """Truth: the activations computed by hand, counted with torch ops."""
    torch.manual_seed(seed)
    model = FunctionalNet(dead_channel=seed % 6)
    x = images(n, seed)
    with torch.no_grad():
        a1 = F.relu(model.conv1(x))  # (n, 6, 8, 8)
        a2 = F.relu(model.conv2(a1))  # (n, 8, 8, 8)
    batches = [(x[i : i + batch], None) for i in range(0, n, batch)]
    for data in (x, batches):
        first, second = dead_units(model, data, batch_size=batch).layers
        for layer, a in ((first, a1), (second, a2)):
            assert layer.sparsity == int((a <= 0).sum()) / a.numel()
            never = (a.amax(dim=(0, 2, 3)) <= 0).nonzero().flatten().tolist()
            assert list(layer.dead_channels) == never


def test_images_labels_pair_imageset_and_one_item_batches_are_data():
    """The data gradient_flow and explain take: an (images, labels) pair (rejected before as
    "expected float images, got torch.int64 of shape (20,)"), an ImageSet-like object and a
    DataLoader over TensorDataset(x) (1-item batches). Truth: counts on hand-made activations."""
    torch.manual_seed(3)
    model = FunctionalNet(dead_channel=4)
    x, y = images(20, seed=3), torch.arange(20) % 3
    with torch.no_grad():
        a1 = F.relu(model.conv1(x))  # (20, 6, 8, 8)
    one_item = [[x[i : i + 6]] for i in range(0, 20, 6)]
    for data in ((x, y), [x, y], types.SimpleNamespace(images=x, labels=y), one_item):
        first, _ = dead_units(model, data, batch_size=6).layers
        assert first.sparsity == int((a1 <= 0).sum()) / a1.numel()
        assert first.dead_channels == (4,)
        stats = activation_stats(model, data, batch_size=7).layers[0]
        assert stats.mean == pytest.approx(float(a1.mean()), rel=1e-5)


def test_a_raw_uint8_imageset_is_refused_with_the_fix():
    """A data set's ImageSet holds uint8 pixels the model never saw unnormalised."""
    from cnnlab.data import load_dataset

    ds = load_dataset("digits", "test")
    with pytest.raises(CnnlabError, match="uint8.*normalis"):
        dead_units(FunctionalNet(dead_channel=4), ds)


def test_relu_module_called_twice_gives_two_sites():
    names = [l.name for l in dead_units(tiny_resnet(), images()).layers]
    assert names == ["1", "2.relu", "2.relu #2"]


# --- activation statistics -------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40),
    cut=st.integers(0, 40),
)
def test_pooled_moments_equal_those_of_all_values(values, cut):
    """Chan's parallel update against numpy's mean and variance of the whole list."""
    cut = min(cut, len(values))

    def moments(part):
        a = np.array(part, dtype=np.float64)
        if not len(a):
            return 0, 0.0, 0.0
        return len(a), float(a.mean()), float(((a - a.mean()) ** 2).sum())

    n, mean, m2 = pooled(moments(values[:cut]), moments(values[cut:]))
    a = np.array(values)
    assert n == len(a) and mean == pytest.approx(a.mean(), abs=1e-9)
    assert m2 / n == pytest.approx(a.var(), rel=1e-9, abs=1e-9)


def test_a_std_small_against_the_mean_is_not_lost_to_cancellation():
    """A ReLU site of mean ~100 and std ~0.01: sum(y²)/n − mean² in float32 would lose the
    std entirely; the centred second pass keeps it to 1e-5 of float64's answer on the same
    values, across batches."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU())
    with torch.no_grad():
        model[0].weight.mul_(0.01), model[0].bias.fill_(100.0)
    x = torch.randn(300, 8)
    with torch.no_grad():  # batch by batch, as measured: the same float32 values
        y = torch.cat([model(x[i : i + 64]) for i in range(0, 300, 64)]).double()
    (relu,) = activation_stats(model, x, batch_size=64).layers
    assert relu.mean == pytest.approx(float(y.mean()), rel=1e-7)
    assert relu.std == pytest.approx(float(y.std(unbiased=False)), rel=1e-6)


def test_activation_stats_match_direct_computation():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(64, 16), nn.Sigmoid(), nn.Linear(16, 16), nn.Tanh())
    with torch.no_grad():
        model[0].weight.mul_(20)  # drive the sigmoid into saturation
    x = images(50).flatten(1)
    with torch.no_grad():
        s = torch.sigmoid(model[0](x))
        t = torch.tanh(model[2](s))
    sig, tanh = activation_stats(model, x.view(50, 64), batch_size=7).layers
    assert (sig.kind, tanh.kind) == ("sigmoid", "tanh")
    assert sig.mean == pytest.approx(float(s.mean()), rel=1e-5)
    assert sig.std == pytest.approx(float(s.std(unbiased=False)), rel=1e-4)
    assert sig.saturated == pytest.approx(float(((s <= 0.01) | (s >= 0.99)).float().mean()))
    assert sig.saturated > 0.3
    assert tanh.saturated == pytest.approx(float((t.abs() >= 0.99).float().mean()))


# --- gradient flow ------------------------------------------------------------------------------


def deep_net(activation: str, depth: int = 12, width: int = 32) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = 64
    for _ in range(depth - 1):
        layers.append(nn.Linear(fan_in, width))
        if activation == "sigmoid":
            layers.append(nn.Sigmoid())
        else:
            layers += [nn.BatchNorm1d(width), nn.ReLU()]
        fan_in = width
    layers.append(nn.Linear(fan_in, 10))
    return nn.Sequential(*layers)


def test_deep_sigmoid_net_vanishes_relu_bn_does_not():
    """Notes §4.2: sigmoid's derivative <= 0.25 shrinks the gradient layer by layer."""
    torch.manual_seed(0)
    x, y = images(64), torch.randint(0, 10, (64,))
    sigmoid = gradient_flow(deep_net("sigmoid"), [(x, y)])
    relu_bn = gradient_flow(deep_net("relu"), [(x, y)])
    assert len(sigmoid.layers) == 12 and sigmoid.vanishing and not sigmoid.exploding
    assert not relu_bn.vanishing and not relu_bn.exploding
    assert relu_bn.ratio > 1e3 * sigmoid.ratio


def test_gradient_norms_equal_autograd():
    """Truth: torch.autograd.grad of the mean loss over both batches, concatenated."""
    torch.manual_seed(0)
    model = FunctionalNet()
    x, y = images(24), torch.randint(0, 3, (24,))
    flow = gradient_flow(model, [(x[:10], y[:10]), (x[10:], y[10:])])
    weights = [model.conv1.weight, model.conv2.weight, model.fc.weight]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
    assert [l.name for l in flow.layers] == ["conv1", "conv2", "fc"]
    for layer, g in zip(flow.layers, grads, strict=True):
        assert layer.l2 == pytest.approx(float(g.norm()), rel=1e-5)
        assert layer.mean_abs == pytest.approx(float(g.abs().mean()), rel=1e-5)
        assert layer.max == pytest.approx(float(g.abs().max()), rel=1e-5)
    assert flow.ratio == pytest.approx(float(grads[0].norm() / grads[2].norm()), rel=1e-5)


def test_exploding_on_non_finite_gradient():
    model = FunctionalNet()
    with torch.no_grad():
        model.fc.weight[0, 0] = float("inf")
    flow = gradient_flow(model, (images(4), torch.zeros(4, dtype=torch.long)))
    assert flow.exploding
    json.dumps(flow.to_dict(), allow_nan=False)  # non-finite numbers become null


# --- restoring the model ------------------------------------------------------------------------


def snapshot(model: nn.Module) -> dict:
    return {
        "modes": [m.training for m in model.modules()],
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
    }


def assert_same(before: dict, after: dict) -> None:
    for key in ("modes", "hooks", "requires_grad"):
        assert before[key] == after[key], key
    for a, b in zip(before["grads"], after["grads"], strict=True):
        assert (a is None and b is None) or torch.equal(a, b)
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), k


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_every_function_restores_mode_hooks_grad_flags_buffers(mode):
    torch.manual_seed(0)
    model = tiny_resnet()
    model.train(mode != "eval")
    if mode == "mixed":
        model[2].eval()
    model[0].weight.requires_grad_(False)  # a frozen layer
    model[2].conv1.register_forward_hook(lambda *a: None)  # the user's own hook
    model[6].weight.grad = torch.ones_like(model[6].weight)
    x, y = images(16), torch.randint(0, 3, (16,))
    before = snapshot(model)
    dead_units(model, x)
    activation_stats(model, x)
    flow = gradient_flow(model, [(x, y)])
    assert_same(before, snapshot(model))
    assert flow.layers[0].name == "0" and flow.layers[0].l2 > 0  # frozen layer still measured


def test_epoch_diagnostics_leaves_grads_and_rng_and_is_json():
    torch.manual_seed(0)
    model = tiny_resnet().train()
    x, y = images(16), torch.randint(0, 3, (16,))
    F.cross_entropy(model(x), y).backward()  # grads of a training step in progress
    before = snapshot(model)
    rng = torch.get_rng_state()
    out = epoch_diagnostics(model, x, y)
    assert torch.equal(rng, torch.get_rng_state())
    assert_same(before, snapshot(model))
    json.dumps(out, allow_nan=False)
    assert set(out["dead_share"]) == {"1", "2.relu", "2.relu #2"}
    assert list(out["grad_norm"]) == ["0", "2.conv1", "2.bn1", "2.conv2", "2.bn2", "6"]
    assert out["vanishing"] is False


# --- bad input ------------------------------------------------------------------------------


def test_bad_input_is_one_clear_error():
    class TupleNet(nn.Module):
        def forward(self, x):
            return x.flatten(1), x

    with pytest.raises(CnnlabError, match="logits"):
        dead_units(TupleNet(), images())
    with pytest.raises(CnnlabError, match="float"):
        dead_units(FunctionalNet(), torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(CnnlabError, match="labels"):
        gradient_flow(FunctionalNet(), [images()])


@pytest.mark.parametrize("call", [dead_units, activation_stats])
def test_images_the_model_cannot_take_are_one_clear_error(call):
    """Wrong channels (3 for a 1-channel net) and uint8 inside an iterable: CnnlabError."""
    with pytest.raises(CnnlabError, match=r"shape \(2, 3, 8, 8\).*channels and size"):
        call(FunctionalNet(), torch.randn(2, 3, 8, 8))
    uint8 = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(CnnlabError, match="float"):
        call(FunctionalNet(), [(uint8, torch.zeros(2, dtype=torch.long))])


def test_gradient_flow_bad_images_and_labels_are_one_clear_error():
    with pytest.raises(CnnlabError, match="channels and size"):
        gradient_flow(FunctionalNet(), [(torch.randn(2, 3, 8, 8), torch.zeros(2).long())])
    with pytest.raises(CnnlabError, match=r"class indices 0\.\.2"):
        gradient_flow(FunctionalNet(), [(images(2), torch.tensor([0, 7]))])


def test_gradient_flow_inside_inference_mode_says_so():
    """It raised a raw RuntimeError ("does not require grad") inside torch.inference_mode()."""
    with torch.inference_mode(), pytest.raises(CnnlabError, match="outside the torch.inference"):
        gradient_flow(FunctionalNet(), (images(4), torch.zeros(4).long()))


def test_epoch_diagnostics_on_an_empty_batch_says_no_images():
    with pytest.raises(CnnlabError, match="no images"):
        epoch_diagnostics(FunctionalNet(), images(0), torch.zeros(0, dtype=torch.long))


def test_thresholds_and_batch_size_are_checked():
    with pytest.raises(CnnlabError, match="threshold"):
        dead_units(FunctionalNet(), images(), threshold=5)
    with pytest.raises(CnnlabError, match="sparsity_threshold"):
        dead_units(FunctionalNet(), images(), sparsity_threshold=-0.1)
    with pytest.raises(CnnlabError, match="batch_size"):
        activation_stats(FunctionalNet(), images(), batch_size=0)


# --- CLI ------------------------------------------------------------------------------------


def test_cli_json_and_table(monkeypatch, capsys):
    """The CLI against a stand-in for cnnlab.train.rundir.load_run (the attributes Run promises)."""
    from cnnlab.cli import diagnose as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())

    def main(argv):
        args = parser.parse_args(argv)
        return args.run(args)

    torch.manual_seed(0)
    model = FunctionalNet(dead_channel=0).eval()
    data = types.SimpleNamespace(
        images=torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8),
        labels=torch.randint(0, 3, (40,)),
    )
    run = types.SimpleNamespace(
        model=model,
        input_shape=(1, 8, 8),
        dataset=lambda split="test", progress=None: data,
        preprocess=lambda im: (im.float() / 255 - 0.5) / 0.25,
    )
    fake = types.ModuleType("cnnlab.train.rundir")
    fake.load_run = lambda path: run
    monkeypatch.setitem(sys.modules, "cnnlab.train.rundir", fake)

    assert main(["diagnose", "somewhere", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dead_units"]["layers"][0]["dead_channels"] == [0]
    assert result["findings"][0]["code"] == "dead-units"
    assert main(["diagnose", "somewhere"]) == 0
    out = capsys.readouterr().out
    assert "DEAD" in out and "Gradient flow" in out and "try:" in out
    with pytest.raises(CnnlabError, match="--limit"):
        main(["diagnose", "somewhere", "--limit", "-5"])


# --- no gradient at all ---------------------------------------------------------------------


def zero_net() -> nn.Module:
    """Every weight 0: ReLU(conv) is 0 everywhere, so the head's weight gradient (its input
    times dL/dlogits) is 0, and the conv's (through the head's zero weights) is 0 too."""
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    return net


def test_no_gradient_flowing_is_said_not_nan():
    """It printed "first/last = nan" and flagged neither vanishing nor exploding."""
    flow = gradient_flow(zero_net(), (images(8), torch.zeros(8, dtype=torch.long)))
    assert [l.l2 for l in flow.layers] == [0.0, 0.0]  # the truth: autograd's own zeros
    assert flow.no_gradient and "no gradient flows" in str(flow) and "nan" not in str(flow)
    assert flow.to_dict()["no_gradient"] is True
    assert [f.code for f in diagnose.findings(flow=flow)] == ["no-gradient"]
    healthy = gradient_flow(FunctionalNet(), (images(8), torch.zeros(8, dtype=torch.long)))
    assert not healthy.no_gradient and "no-gradient" not in {
        f.code for f in diagnose.findings(flow=healthy)
    }


def test_cli_says_no_gradient_flows(monkeypatch, capsys):
    from cnnlab.cli import diagnose as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    data = types.SimpleNamespace(
        images=torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8),
        labels=torch.randint(0, 3, (16,)),
    )
    run = types.SimpleNamespace(
        model=zero_net().eval(),
        input_shape=(1, 8, 8),
        dataset=lambda split="test", progress=None: data,
        preprocess=lambda im: im.float() / 255,
    )
    fake = types.ModuleType("cnnlab.train.rundir")
    fake.load_run = lambda path: run
    monkeypatch.setitem(sys.modules, "cnnlab.train.rundir", fake)
    args = parser.parse_args(["diagnose", "somewhere"])
    assert args.run(args) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long titles
    assert "no gradient flows" in out and "nan" not in out and "no-gradient" in out


def test_a_model_that_is_one_weighted_module_is_measured():
    """The root module itself owns the weight (name ""): measured, as autograd says."""
    torch.manual_seed(0)
    net, x, y = nn.Linear(5, 3), torch.randn(6, 5), torch.randint(0, 3, (6,))
    (layer,) = gradient_flow(net, (x, y)).layers
    (g,) = torch.autograd.grad(F.cross_entropy(net(x), y), [net.weight])
    assert layer.name == "" and layer.l2 == pytest.approx(float(g.norm()), rel=1e-5)


def test_train_mode_logits_tells_one_image_to_add_its_batch_dim():
    """One (3, 8, 8) image was cut to x[:2] before the check: the error named (2, 8, 8), two
    channels the image never had. The error now names the shape given, as `forward` does."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
    )
    model.append(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    with pytest.raises(CnnlabError, match=r"\(3, 8, 8\).*x\.unsqueeze\(0\)") as caught:
        diagnose.train_mode_logits(model, torch.randn(3, 8, 8))
    assert "(2, 8, 8)" not in str(caught.value)
    assert diagnose.train_mode_logits(model, torch.randn(3, 8, 8).unsqueeze(0))  # the fix runs


class _TrainTuple(nn.Module):
    """(logits, logits) in train mode, the logits in eval mode, as an Inception's aux head."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)

    def forward(self, x):
        z = self.fc(self.conv(x).mean((-2, -1)))
        return (z, z) if self.training else z


@pytest.mark.parametrize("train_tuple", [False, True])
def test_train_mode_logits_of_one_image_the_model_runs_is_its_batchs(train_tuple):
    """A model of unbatched convs runs one (3, 8, 8) image into (K,) logits: the answer is
    that of the image's batch x[None], which a training step runs."""
    torch.manual_seed(0)
    model = _TrainTuple() if train_tuple else nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(-3), nn.Linear(4, 2)
    )  # fmt: skip
    x = torch.randn(3, 8, 8)
    out = model.train()(x[None])
    batched = isinstance(out, torch.Tensor) and out.shape == (1, 2)  # torch's own answer
    assert batched is not train_tuple
    assert diagnose.train_mode_logits(model, x) is batched
    assert diagnose.train_mode_logits(model, x[None]) is batched
