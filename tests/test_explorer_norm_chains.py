"""The explorer's conv chains follow a GroupNorm or an InstanceNorm2d after the conv as they
follow a BatchNorm2d: the chain of conv -> GroupNorm -> ReLU ends at the ReLU (the top images
and the stage table were the raw conv's), and the stage table's norm step shows the value
normalised with this image's statistics (GroupNorm: over the unit's group of channels and
every position; InstanceNorm: over its channel; running ones where an InstanceNorm tracks
them), then γ and β where the norm has them.

Truth: torch's F.group_norm / F.instance_norm on the conv's output from a plain forward hook,
the mean and variance torch computes over the group or channel, and the modules' own outputs
(hooks); the ReLU is the module the model calls after the norm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from safetensors.torch import save_file
from torch import nn

from cnnlab.data import ImageSet
from cnnlab.explorer import create_app
from cnnlab.explorer.probe import Network, dot_product
from cnnlab.train.checkpoint import MODEL_WEIGHTS
from cnnlab.train.rundir import Run

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = {"data": None, "classes": ["a", "b", "c"], "mean": [0.5], "std": [0.25]}


def instance_norm(affine: bool, running: bool) -> nn.InstanceNorm2d:
    norm = nn.InstanceNorm2d(6, affine=affine, track_running_stats=running)
    if running:  # statistics of its own, far from any image's
        norm.running_mean.copy_(torch.linspace(-0.5, 0.5, 6))
        norm.running_var.copy_(torch.linspace(0.5, 2.0, 6))
    return norm


NORMS = {
    "groupnorm": lambda: nn.GroupNorm(3, 6),  # 2 channels a group
    "groupnorm-no-affine": lambda: nn.GroupNorm(2, 6, affine=False),
    "groupnorm-one-group": lambda: nn.GroupNorm(1, 6),  # a LayerNorm over (C, H, W)
    "instancenorm": lambda: instance_norm(affine=False, running=False),
    "instancenorm-affine": lambda: instance_norm(affine=True, running=False),
    "instancenorm-running": lambda: instance_norm(affine=True, running=True),
}


class Block(nn.Module):
    """conv -> norm -> ReLU, twice, then a linear head; affine weights made non-trivial."""

    def __init__(self, make):
        super().__init__()
        self.conv1, self.norm1, self.relu1 = nn.Conv2d(1, 6, 3, padding=1), make(), nn.ReLU()
        self.conv2, self.norm2, self.relu2 = nn.Conv2d(6, 6, 3), make(), nn.ReLU()
        self.fc = nn.Linear(6, 3)
        with torch.no_grad():
            for norm in (self.norm1, self.norm2):
                if getattr(norm, "weight", None) is not None:
                    norm.weight.uniform_(0.5, 2.0)
                    norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        h = self.relu1(self.norm1(self.conv1(x)))
        h = self.relu2(self.norm2(self.conv2(h)))
        return self.fc(h.mean((2, 3)))


def hooked(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every named module's output on x, batch kept, from plain forward hooks."""
    outs: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o.detach().clone()))
        for n, m in model.named_modules()
        if n
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return outs


@torch.no_grad()
def torch_norm(norm: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """The norm of conv output y (1, C, H, W) by torch's functional op, eval mode."""
    if isinstance(norm, nn.GroupNorm):
        return F.group_norm(y, norm.num_groups, norm.weight, norm.bias, norm.eps)
    use_input = not norm.track_running_stats
    return F.instance_norm(
        y, norm.running_mean, norm.running_var, norm.weight, norm.bias, use_input, 0.0, norm.eps
    )


def torch_stats(norm: nn.Module, y: torch.Tensor, f: int) -> tuple[float, float]:
    """(μ, σ²) the norm uses for channel f of y (1, C, H, W): the group's or the channel's
    over this image (torch.var_mean, biased), or the running ones."""
    if isinstance(norm, nn.InstanceNorm2d) and norm.track_running_stats:
        return float(norm.running_mean[f]), float(norm.running_var[f])
    per = y.shape[1] // (norm.num_groups if isinstance(norm, nn.GroupNorm) else y.shape[1])
    g = f // per
    var, mean = torch.var_mean(y[0, g * per : (g + 1) * per].double(), unbiased=False)
    return float(mean), float(var)


@pytest.mark.parametrize("kind", list(NORMS))
def test_the_chain_runs_through_the_norm_to_the_relu(kind):
    torch.manual_seed(0)
    model = Block(NORMS[kind]).eval()
    x = torch.randn(1, 1, 9, 9)
    net = Network.of(model, (1, 9, 9), x)
    chains = [(c.conv, c.bn, c.act) for c in net.chains]
    assert chains == [("conv1", "norm1", "relu1"), ("conv2", "norm2", "relu2")]


@pytest.mark.parametrize("kind", list(NORMS))
def test_each_stage_is_torchs_norm_of_this_image(kind):
    torch.manual_seed(1)
    model = Block(NORMS[kind]).eval()
    x = torch.randn(1, 1, 9, 9) * 2 + 0.3
    net = Network.of(model, (1, 9, 9), x)
    probe = net.probe(x)
    truth = hooked(model, x)
    for conv, norm_name, relu in [("conv1", "norm1", "relu1"), ("conv2", "norm2", "relu2")]:
        norm = getattr(model, norm_name)
        y = truth[conv]
        by_torch = torch_norm(norm, y)
        assert torch.allclose(by_torch, truth[norm_name], atol=1e-6)  # the truth is torch's
        c, h, w = y.shape[1:]
        for f, i, j in [(0, 0, 0), (c - 1, h - 1, w - 1), (3, h // 2, 1)]:
            stages = dot_product(net, probe, conv, f, i, j)["chain"]
            assert [s["stage"] for s in stages] == ["conv", kind.split("-")[0], "activation"]
            step = stages[1]
            assert step["layer"] == norm_name and step["kind"] == type(norm).__name__
            assert step["value"] == pytest.approx(float(by_torch[0, f, i, j]), abs=1e-6)
            mean, var = torch_stats(norm, y, f)
            assert step["mean"] == pytest.approx(mean, rel=1e-6, abs=1e-7)
            assert step["var"] == pytest.approx(var, rel=1e-6, abs=1e-7)
            weight = getattr(norm, "weight", None)
            gamma = 1.0 if weight is None else weight[f].item()
            beta = 0.0 if weight is None else norm.bias[f].item()
            assert (step["gamma"], step["beta"], step["eps"]) == (gamma, beta, norm.eps)
            formula = (float(y[0, f, i, j]) - mean) / (var + norm.eps) ** 0.5 * gamma + beta
            assert formula == pytest.approx(float(by_torch[0, f, i, j]), abs=1e-5)
            assert stages[2]["value"] == pytest.approx(float(truth[relu][0, f, i, j]))


def test_group_and_channel_the_statistics_are_taken_over():
    torch.manual_seed(2)
    model = Block(NORMS["groupnorm"]).eval()
    x = torch.randn(1, 1, 9, 9)
    net = Network.of(model, (1, 9, 9), x)
    probe = net.probe(x)
    for f in range(6):  # GroupNorm(3, 6): channels 0-1, 2-3, 4-5
        step = dot_product(net, probe, "conv2", f, 2, 3)["chain"][1]
        assert step["channels"] == [f // 2 * 2, f // 2 * 2 + 2]
        assert step["statistics"] == "image" and step["count"] == 2 * 7 * 7


def test_top_images_of_a_groupnorm_block_are_its_relus(tmp_path):
    torch.manual_seed(3)
    model = Block(NORMS["groupnorm"]).eval()
    save_file(model.state_dict(), tmp_path / MODEL_WEIGHTS)  # the top images' cache key
    app = create_app(Run(tmp_path, None, model, {**CONFIG, "input_shape": [1, 9, 9]}))
    pixels = torch.randint(0, 256, (20, 1, 9, 9), dtype=torch.uint8)
    app.state.explorer.test = ImageSet(pixels, torch.arange(20) % 3, ("a", "b", "c"), "random")
    client = TestClient(app)
    about = client.get("/api/model").json()
    assert about["top_layers"] == ["relu1", "relu2"]
    assert about["convs"][0] == {"conv": "conv1", "bn": "norm1", "act": "relu1"}
    response = hooked(model, app.state.explorer.run.preprocess(pixels))["relu2"].amax((2, 3))
    got = client.get("/api/top", params={"layer": "relu2", "channel": 4}).json()
    values = [image["value"] for image in got["images"]]
    assert values == pytest.approx(response[:, 4].topk(len(values)).values.tolist(), abs=1e-6)


def test_a_batchnorm_chain_is_as_it_was():
    """BatchNorm's step keeps its fields: running mean and variance, no kind."""
    torch.manual_seed(4)
    model = Block(lambda: nn.BatchNorm2d(6)).eval()
    x = torch.randn(1, 1, 9, 9)
    net = Network.of(model, (1, 9, 9), x)
    step = dot_product(net, net.probe(x), "conv1", 2, 1, 1)["chain"][1]
    bn = model.norm1
    assert step == {
        "stage": "batchnorm",
        "layer": "norm1",
        "value": pytest.approx(float(hooked(model, x)["norm1"][0, 2, 1, 1])),
        "mean": float(bn.running_mean[2]),
        "var": float(bn.running_var[2]),
        "eps": bn.eps,
        "gamma": bn.weight[2].item(),
        "beta": bn.bias[2].item(),
    }


class GroupNormReLU(nn.GroupNorm):
    """A GroupNorm with its activation inside (BiT's BitGroupNormActivation)."""

    def forward(self, x):
        return torch.relu(super().forward(x))


def test_a_norm_that_computes_more_gets_its_value_alone():
    """The formula is torch's GroupNorm: at a unit its ReLU zeroes it would not add up to the
    value shown, at another it would only by chance; both units show the value alone."""
    torch.manual_seed(6)
    model = Block(lambda: GroupNormReLU(3, 6)).eval()
    x = torch.randn(1, 1, 9, 9)
    net = Network.of(model, (1, 9, 9), x)
    assert [(c.bn, c.act) for c in net.chains] == [("norm1", "relu1"), ("norm2", "relu2")]
    probe, truth = net.probe(x), hooked(model, x)["norm1"][0]
    negative = (truth == 0).nonzero()[0].tolist()
    positive = (truth > 0).nonzero()[0].tolist()
    for f, i, j in (negative, positive):
        step = dot_product(net, probe, "conv1", f, i, j)["chain"][1]
        assert step == {
            "stage": "groupnorm",
            "layer": "norm1",
            "kind": "GroupNormReLU",
            "value": pytest.approx(float(truth[f, i, j])),
        }
