"""Every command that takes a layer name reads it as the summary, the explorer, probe and
`visualize --maps` name calls: a module's name is its first call, `name #N` its N-th, and a
call past the last is refused, naming the calls. Grad-CAM, activation maximization, the
effective receptive field and `resolve_layer` read the last call under the plain name, and
refused `relu #2`.

Truth: Grad-CAM computed by hand from plain forward and backward hooks that record every
call (weights = spatial mean of the gradient at that call's output, map = ReLU(Σ w·A));
Captum's LayerGradCam on a copy of the model with one ReLU module per call (its hook keeps
a module's last call: on the shared ReLU it equals `relu #3`); the channel read by plain
hooks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab import explain, inspect
from cnnlab.errors import ExplainError
from cnnlab.explain.gradcam import scale_per_image

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CALLS = ["relu", "relu #2", "relu #3"]


class Reused(nn.Module):
    """One ReLU module after each of three convs; a BatchNorm the fast copy folds."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.c3 = nn.Conv2d(6, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.relu(self.c1(x))
        x = self.relu(self.bn(self.c2(x)))
        x = self.relu(self.c3(x))
        return self.head(x.mean((2, 3)))


class Distinct(nn.Module):
    """The same computation with one ReLU module per call, sharing `Reused`'s weights."""

    def __init__(self, shared: Reused):
        super().__init__()
        self.m = shared
        self.r1, self.r2, self.r3 = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x):
        m = self.m
        x = self.r1(m.c1(x))
        x = self.r2(m.bn(m.c2(x)))
        x = self.r3(m.c3(x))
        return m.head(x.mean((2, 3)))


@pytest.fixture
def model_x():
    torch.manual_seed(0)
    model = Reused()
    with torch.no_grad():  # statistics of its own, so a fold changes the conv's weights
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model.eval(), torch.randn(3, 3, 16, 16)


def by_hand(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
    """Grad-CAM of each call of model.relu, from hooks that record every call's output and
    the gradient autograd delivers to it."""
    acts, grads = [], {}

    def hook(module, args, out):
        k = len(acts)
        acts.append(out)
        out.register_hook(lambda g: grads.__setitem__(k, g))

    handle = model.relu.register_forward_hook(hook)
    logits = model(x)
    handle.remove()
    logits.gather(1, target[:, None]).sum().backward()
    maps = []
    for k, a in enumerate(acts):
        w = grads[k].mean((2, 3))  # (B, K)
        cam = F.relu((w[:, :, None, None] * a.detach()).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
        maps.append(scale_per_image(cam[:, 0]))
    return maps


def captum_cam(model: nn.Module, layer: nn.Module, x, target) -> torch.Tensor:
    from captum.attr import LayerAttribution, LayerGradCam

    attr = LayerGradCam(model, layer).attribute(x, target, relu_attributions=True)
    up = LayerAttribution.interpolate(attr, x.shape[-2:], interpolate_mode="bilinear")
    return scale_per_image(up[:, 0])


def test_gradcam_reads_each_call_by_its_label(model_x):
    model, x = model_x
    target = torch.tensor([0, 3, 1])
    truth = by_hand(model, x, target)
    assert not torch.allclose(truth[0], truth[1], atol=1e-3)  # the calls' maps differ
    distinct = Distinct(model).eval()
    for k, label in enumerate(CALLS):
        got = explain.gradcam(model, x, target, layer=label)
        torch.testing.assert_close(got, truth[k], rtol=1e-5, atol=1e-6)
        module = (distinct.r1, distinct.r2, distinct.r3)[k]
        torch.testing.assert_close(got, captum_cam(distinct, module, x, target), atol=1e-5, rtol=0)
        for layout in (True, False):  # the inference copy (BatchNorm folded), either layout
            fast = explain.gradcam(model, x, target, layer=label, channels_last=layout)
            torch.testing.assert_close(fast, truth[k], rtol=1e-4, atol=1e-5)
    # Captum's hook on the shared module keeps its last call
    on_shared = captum_cam(model, model.relu, x, target)
    torch.testing.assert_close(on_shared, truth[2], atol=1e-5, rtol=0)
    assert not torch.allclose(on_shared, truth[0], atol=1e-3)


def test_the_default_layer_is_the_last_call_of_the_last_map(model_x):
    model, x = model_x
    assert inspect.default_layer(model, x) == "relu #3"
    assert inspect.feeding_maps(model, x)[-1] == "relu #3"
    target = torch.tensor([2, 2, 4])
    torch.testing.assert_close(
        explain.gradcam(model, x, target), by_hand(model, x, target)[2], rtol=1e-5, atol=1e-6
    )


def test_a_call_past_the_last_is_refused_naming_the_calls(model_x):
    model, x = model_x
    assert inspect.resolve_layer(model, "relu #2") is model.relu
    with pytest.raises(ExplainError, match=r"called 3 times.*\(relu, relu #2, relu #3\)"):
        explain.gradcam(model, x, layer="relu #4")
    with pytest.raises(ExplainError, match="called 3 times"):
        explain.activation_maximization(model, "relu #4", 0, steps=1, input_size=(3, 16, 16))


def test_activation_maximization_reads_the_call_named(model_x):
    model, _ = model_x
    for k, label in enumerate(CALLS):
        res = explain.activation_maximization(
            model, label, [0, 1], steps=3, restarts=1, input_size=(3, 16, 16)
        )
        seen = every_output(model, res.images)[k]
        h, w = seen.shape[2:]
        centre = seen[torch.arange(2), torch.tensor([0, 1]), h // 2, w // 2]
        torch.testing.assert_close(res.activation, centre, rtol=1e-5, atol=1e-6)


def every_output(model: nn.Module, x: torch.Tensor, graph: bool = False) -> list[torch.Tensor]:
    """The ReLU module's output at each call, by a plain forward hook (with its graph)."""
    seen = []
    hook = model.relu.register_forward_hook(lambda m, a, o: seen.append(o))
    with torch.set_grad_enabled(graph):
        model(x)
    hook.remove()
    return seen


def test_the_effective_receptive_field_reads_the_call_named(model_x):
    model, _ = model_x
    rows = {(r.name, r.call): r.receptive_field for r in cnnlab.summary(model, (3, 16, 16)).rows}
    for k, label in enumerate(CALLS):
        erf = explain.effective_receptive_field(model, label, (3, 16, 16), n=4)
        x = torch.randn((4, 3, 16, 16), generator=torch.Generator().manual_seed(0))
        x.requires_grad_(True)
        out = every_output(model, x, graph=True)
        h, w = out[k].shape[2:]
        out[k][:, :, h // 2, w // 2].sum().backward()
        torch.testing.assert_close(erf.gradient, x.grad.abs().mean((0, 1)))
        assert erf.theoretical == rows[("relu", k + 1)]
    assert len({rows[("relu", k)] for k in (1, 2, 3)}) == 3  # the calls' fields differ


class Checkpointed(nn.Module):
    """One ReLU module called twice inside a reentrant activation checkpoint (or not)."""

    def __init__(self, checkpointed: bool = True):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.relu, self.head = nn.ReLU(), nn.Linear(4, 5)
        self.checkpointed = checkpointed

    def inner(self, x):
        return self.relu(self.c2(self.relu(self.c1(x))))

    def forward(self, x):
        if self.checkpointed:
            x = torch.utils.checkpoint.checkpoint(self.inner, x, use_reentrant=True)
        else:
            x = self.inner(x)
        return self.head(x.mean((2, 3)))


def test_inside_a_reentrant_checkpoint_only_the_last_call_is_read():
    torch.manual_seed(0)
    model, x, target = Checkpointed().eval(), torch.randn(2, 3, 8, 8), torch.tensor([1, 3])
    plain = Checkpointed(checkpointed=False).eval()
    plain.load_state_dict(model.state_dict())
    got = explain.gradcam(model, x, target, layer="relu #2")
    torch.testing.assert_close(got, by_hand(plain, x, target)[1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ExplainError, match=r"call 1 of 2 of 'relu'.*'relu #2'"):
        explain.gradcam(model, x, target, layer="relu")
