"""Models that use activation checkpointing (torch.utils.checkpoint, reentrant or not; Hugging
Face's `gradient_checkpointing_enable`). Truth: the same model without checkpointing (the same
weights), Captum's LayerGradCam, torch's autograd."""

from __future__ import annotations

import copy
import textwrap
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import parametrizations as P
from torch.utils.checkpoint import checkpoint

from cnnlab.cli import main
from cnnlab.diagnose import gradient_flow
from cnnlab.explain import (
    ExplainError,
    activation_maximization,
    effective_receptive_field,
    gradcam,
    saliency,
    smoothgrad,
)
from cnnlab.inspect import Capture, Hooks, gradients, preserved, through_reentrant
from cnnlab.train import import_run
from cnnlab.train.source import parse_model_ref
from tiny_nets import imported_run

pytestmark = [
    pytest.mark.usefixtures("one_thread"),  # conftest.py: tiny models, one thread
    # torch warns at every reentrant checkpoint whose input needs no gradient (no_grad forwards)
    pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad"),
]

REENTRANT = [True, False]  # torch.utils.checkpoint's use_reentrant


class Net(nn.Module):
    """stem → block (checkpointed unless use_reentrant is None) → head."""

    def __init__(self, use_reentrant: bool | None = None, norm=lambda m: m):
        super().__init__()
        self.use_reentrant = use_reentrant
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.block = nn.Sequential(
            norm(nn.Conv2d(8, 8, 3, padding=1)),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))

    def forward(self, x):
        x = self.stem(x)
        if self.use_reentrant is None:
            x = self.block(x)
        else:  # in eval mode too, as timm's `set_grad_checkpointing` models do
            x = checkpoint(self.block, x, use_reentrant=self.use_reentrant)
        return self.head(x)


def pair(use_reentrant: bool, norm=lambda m: m) -> tuple[nn.Module, nn.Module]:
    """(the checkpointed net, the same weights without checkpointing)."""
    torch.manual_seed(0)
    plain = Net(None, norm)
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        plain.block[1].running_mean.uniform_(-0.5, 0.5)
        plain.block[1].running_var.uniform_(0.5, 2.0)
    ckpt = Net(use_reentrant, norm)
    ckpt.load_state_dict(plain.state_dict())
    return ckpt, plain


X = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("use_reentrant", REENTRANT)
@pytest.mark.parametrize("layer", ["stem", "block", "block.3", "block.4"])
@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_gradcam_under_checkpointing_equals_it_without(use_reentrant, layer, method):
    """A layer before the checkpointed block, the block itself, layers inside it (reentrant:
    'the logits do not depend on layer' inside, torch's '.grad()' refusal before it)."""
    ckpt, plain = pair(use_reentrant)
    got = gradcam(ckpt, X, layer=layer, method=method)
    want = gradcam(plain, X, layer=layer, method=method)
    assert want.amax() > 0
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("use_reentrant", REENTRANT)
def test_gradcam_inside_a_checkpoint_equals_captums_layergradcam(use_reentrant):
    from captum.attr import LayerAttribution, LayerGradCam

    ckpt, plain = pair(use_reentrant)
    t = torch.tensor([0, 3, 4])
    got = gradcam(ckpt, X, t, layer="block.3")
    plain.eval()
    cam = LayerGradCam(plain, plain.block[3]).attribute(X, t, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, X.shape[-2:], interpolate_mode="bilinear")[:, 0]
    want = cam / cam.amax((1, 2), keepdim=True)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("use_reentrant", REENTRANT)
def test_saliency_and_smoothgrad_under_checkpointing_equal_them_without(use_reentrant):
    """Reentrant: torch refused `autograd.grad` ('incompatible with .grad()'), a traceback."""
    ckpt, plain = pair(use_reentrant)
    torch.testing.assert_close(saliency(ckpt, X), saliency(plain, X), atol=1e-6, rtol=0)
    got, want = (smoothgrad(m, X, n=4, batch_size=8) for m in (ckpt, plain))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_gradients_leave_grad_as_they_found_it():
    """The reentrant path is a `.backward()`, which accumulates into `.grad`."""
    ckpt, _ = pair(True)
    for p in ckpt.parameters():
        p.grad = torch.full_like(p, 7.0)
    x = X.clone().requires_grad_(True)
    out = ckpt(x).sum()
    assert through_reentrant(out)
    params = list(ckpt.parameters())
    gx, gw = gradients(out, [x, ckpt.block[0].weight], params)
    assert x.grad is None and all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in params)
    _, plain = pair(True)
    x2 = X.clone().requires_grad_(True)
    want = torch.autograd.grad(plain(x2).sum(), [x2, plain.block[0].weight])
    torch.testing.assert_close(gx, want[0])
    torch.testing.assert_close(gw, want[1])


@pytest.mark.parametrize("use_reentrant", REENTRANT)
@pytest.mark.parametrize(
    "norm",
    [lambda m: m, P.weight_norm, torch.nn.utils.weight_norm],
    ids=["plain", "weight_norm", "older_weight_norm"],
)
def test_gradient_flow_under_checkpointing_equals_it_without(use_reentrant, norm):
    """Train mode, where checkpointing is on. Reentrant: a traceback ('incompatible with
    .grad()'). A weight_norm'd conv inside the block: its computed weight must be the one
    the recompute uses (non-reentrant: the recompute's check failed); torch's older
    weight_norm computes it in a hook at every call: inside a reentrant block only the
    recompute's has a gradient (it read as not reached)."""
    ckpt, plain = pair(use_reentrant, norm)
    y = torch.tensor([0, 1, 4])
    got, want = gradient_flow(ckpt, (X, y)), gradient_flow(plain, (X, y))
    assert [l.name for l in got.layers] == [l.name for l in want.layers]
    assert all(l.reached for l in got.layers)
    for a, b in zip(got.layers, want.layers, strict=True):
        assert a.l2 == pytest.approx(b.l2, rel=1e-5), a.name
    assert all(p.grad is None for p in ckpt.parameters())


def test_a_layer_inside_a_reentrant_checkpoint_is_refused_by_erf_and_actmax_by_name():
    """Their gradient runs from the layer to the input, which a reentrant checkpoint's
    backward cannot give: the ERF raised autograd's 'element 0 of tensors does not require
    grad'; activation maximisation silently ascended the regularizer alone."""
    ckpt, _ = pair(True)
    with pytest.raises(ExplainError, match=r"layer 'block.3'.*use_reentrant=False"):
        effective_receptive_field(ckpt, "block.3", (3, 12, 12), n=2)
    with pytest.raises(ExplainError, match=r"layer 'block.3'.*use_reentrant=False"):
        activation_maximization(
            ckpt, "block.3", channels=[0], steps=2, input_size=(3, 12, 12), value_range=(-1, 1)
        )


@pytest.mark.parametrize("use_reentrant", REENTRANT)
def test_erf_and_actmax_elsewhere_under_checkpointing_equal_them_without(use_reentrant):
    ckpt, plain = pair(use_reentrant)
    layers = ["stem.0"] if use_reentrant else ["stem.0", "block.3"]
    for layer in layers:
        got, want = (effective_receptive_field(m, layer, (3, 12, 12), n=2) for m in (ckpt, plain))
        torch.testing.assert_close(got.gradient, want.gradient)
        args = dict(channels=[1], steps=3, input_size=(3, 12, 12), value_range=(-1.0, 1.0))
        got, want = (activation_maximization(m, layer, **args) for m in (ckpt, plain))
        torch.testing.assert_close(got.images, want.images)


@pytest.mark.parametrize("use_reentrant", REENTRANT)
def test_capture_reads_a_gradient_where_the_checkpoint_recomputes_it(use_reentrant):
    """Capture(grads=True): the (output, gradient) of the layer's last call, which inside a
    reentrant checkpoint is the recompute's (hooks fire twice there: forward and backward)."""
    ckpt, plain = pair(use_reentrant)
    found = []
    for model in (ckpt, plain):
        x = X.clone().requires_grad_(True)
        with preserved(model), Capture(model, ["block.3"], grads=True) as cap:
            gradients(model(x)[:, 2].sum(), [x])
        found.append(cap.gradients["block.3"])
    for got, want in zip(*found, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


# Hugging Face: a model whose layers checkpoint in train mode (ResNet, ConvNext and
# MobileNetV2 do not support it in transformers 5: `gradient_checkpointing_enable` raises).


class HFClassifier(nn.Module):
    def __init__(self, hf: nn.Module):
        super().__init__()
        self.hf = hf

    def forward(self, x):
        return self.hf(pixel_values=x).logits


def mobilevit() -> nn.Module:
    from transformers import MobileViTConfig, MobileViTForImageClassification

    torch.manual_seed(0)
    cfg = MobileViTConfig(
        image_size=32,
        hidden_sizes=[16, 24, 32],
        neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 48],
        num_labels=5,
    )
    model = MobileViTForImageClassification(cfg)
    for m in model.modules():  # torch's own init: Hugging Face's gives all-zero maps here
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return model


@pytest.mark.parametrize("use_reentrant", REENTRANT)
def test_hugging_face_checkpointing_gradient_flow_and_gradcam(use_reentrant):
    """gradient_flow (train mode: the layers checkpoint) equals the model's without; Grad-CAM
    (eval mode: Hugging Face checkpoints only in training) equals it and Captum's."""
    from captum.attr import LayerAttribution, LayerGradCam

    hf = mobilevit()
    plain = HFClassifier(hf)
    ckpt_hf = copy.deepcopy(hf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the method's old name
        ckpt_hf.gradient_checkpointing_enable({"use_reentrant": use_reentrant})
    ckpt = HFClassifier(ckpt_hf)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([1, 3])
    calls = []  # checkpointing is on in train mode: a layer inside runs again in the backward
    inside = ckpt.get_submodule("hf.mobilevit.encoder.layer.2.conv_kxk")
    with Hooks().after([(inside, lambda *a: calls.append(1))]):
        got = gradient_flow(ckpt, (x, y))
    assert len(calls) == 2
    want = gradient_flow(plain, (x, y))
    for a, b in zip(got.layers, want.layers, strict=True):
        assert (a.name, a.reached) == (b.name, b.reached)
        assert a.l2 == pytest.approx(b.l2, rel=1e-5, abs=1e-12), a.name
    layer = "hf.mobilevit.encoder.layer.2"  # a layer that checkpoints in train mode
    cam = gradcam(ckpt, x, 1, layer=layer)
    assert cam.amax() > 0
    torch.testing.assert_close(cam, gradcam(plain, x, 1, layer=layer), atol=1e-6, rtol=0)
    plain.eval()
    module = plain.get_submodule(layer)
    ref = LayerGradCam(plain, module).attribute(x, 1, relu_attributions=True)
    ref = LayerAttribution.interpolate(ref, x.shape[-2:], interpolate_mode="bilinear")[:, 0]
    torch.testing.assert_close(cam, ref / ref.amax((1, 2), keepdim=True), atol=1e-5, rtol=0)


def test_the_checkpointed_net_is_what_the_tests_think():
    """The truth above is only a truth if checkpointing really runs: the reentrant net's
    graph passes through a checkpoint, and its block runs twice in a backward."""
    ckpt, _ = pair(True)
    calls = []
    ckpt.block[3].register_forward_hook(lambda *a: calls.append(1))
    x = X.clone().requires_grad_(True)
    out = F.cross_entropy(ckpt(x), torch.tensor([0, 1, 2]))
    assert through_reentrant(out) and len(calls) == 1
    out.backward()
    assert len(calls) == 2


CHECKPOINTED = textwrap.dedent(
    """
    from torch import nn
    from torch.utils.checkpoint import checkpoint

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
            self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

        def forward(self, x):
            return self.head(checkpoint(self.block, self.stem(x), use_reentrant=True))

    def make_net():
        return Net()
    """
)


def test_the_cli_explains_and_diagnoses_a_run_of_a_checkpointed_model(tmp_path, capsys):
    """`cnnlab explain` and `cnnlab diagnose` on a run whose model checkpoints (reentrant) in
    every mode: Grad-CAM inside the block said 'the logits do not depend on layer', saliency
    and gradient flow ended in torch's traceback."""
    (tmp_path / "net.py").write_text(CHECKPOINTED)
    source = parse_model_ref(f"{tmp_path / 'net.py'}:make_net", [])
    torch.manual_seed(0)
    save_file(source.build().state_dict(), tmp_path / "w.safetensors")
    run = tmp_path / "run"
    import_run(source, tmp_path / "w.safetensors", run, "digits")
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(tmp_path / "x.png")
    explain = ["explain", str(run), str(tmp_path / "x.png"), "--out", str(tmp_path / "maps")]
    for extra in (["--layer", "block.0"], ["--method", "saliency"]):
        assert main([*explain, *extra]) == 0, capsys.readouterr().err
    assert main(["diagnose", str(run), "--json", "--limit", "50"]) == 0, capsys.readouterr().err


# A model with a reentrant activation checkpoint: the commands that only read it (eval,
# predict) printed torch's "None of the inputs have requires_grad=True. Gradients will be None"
# on every run, though no gradient is wanted there.


NETS = """
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        x = checkpoint(self.block, x, use_reentrant=True)
        return self.head(x.mean((2, 3)))


def make():
    return Net()
"""


def test_eval_of_a_checkpointed_model_prints_no_gradient_warning(tmp_path, capsys):
    out = imported_run(tmp_path, NETS, data="digits")
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # every warning reaches `seen`, as a user's would
        assert main(["eval", str(out)]) == 0
    assert not [w for w in seen if "requires_grad=True" in str(w.message)]
    assert "requires_grad=True" not in capsys.readouterr().err
    with warnings.catch_warnings(record=True) as seen:  # outside a command: torch's own
        warnings.simplefilter("always")
        parse_model_ref(f"{tmp_path / 'nets.py'}:make").build()(torch.zeros(1, 1, 8, 8))
    assert [w for w in seen if "requires_grad=True" in str(w.message)]


def test_diagnose_says_a_reentrant_checkpoint_on_the_images_cuts_its_layers_off(tmp_path, capsys):
    """The block checkpointed on the images gets no gradient in training (torch's warning says
    so); diagnose found it cut off but pointed only at no_grad and .detach()."""
    out = imported_run(tmp_path, NETS, data="digits")
    capsys.readouterr()
    assert main(["diagnose", str(out)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "no gradient reaches 1 weighted layer(s) (block.0)" in said
    assert "use_reentrant=True" in said and "use_reentrant=False" in said
