"""More models people bring: vision transformers (Hugging Face's CvT, MONAI's ViT) and what
they show cnnlab's own specs never do. An attention layer's dropout returns the softmax
weights (B, heads, N, N): 4-D, one row per image, and N grows with the image as H and W do,
so only the op that made it tells it from a map. Truth: the shapes plain torch gives and the
op each tensor came from (a softmax over the last dim)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.explain import gradcam
from cnnlab.inspect import default_layer, image_maps
from tiny_nets import outputs

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


class Attention(nn.Module):
    """Two-head self-attention as ViTs write it: the weights (B, heads, N, N) go through an
    nn.Dropout module (MONAI's `drop_weights`, Hugging Face CvT's `dropout`)."""

    def __init__(self, dim: int, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.drop_weights = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)

    def forward(self, t):
        b, n, c = t.shape
        q, k, v = self.qkv(t).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(dim=-1)
        return self.proj((self.drop_weights(att) @ v).transpose(1, 2).reshape(b, n, c)) + t


class TinyViT(nn.Module):
    """A patch conv, tokens with a class token, one attention block, the class token's logits;
    `fixed`: a learned position embedding, so the model runs at its own size only."""

    def __init__(self, size: int = 16, fixed: bool = False):
        super().__init__()
        self.patch = nn.Conv2d(1, 8, 4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, 8))
        self.pos = nn.Parameter(torch.randn(1, (size // 4) ** 2 + 1, 8)) if fixed else None
        self.attn = Attention(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1)
        if self.pos is not None:
            t = t + self.pos
        return self.head(self.attn(t)[:, 0])


def _weights_shape(model: nn.Module, x: torch.Tensor) -> tuple[int, ...]:
    """The output shape of `attn.drop_weights`, by a plain forward hook."""
    seen = []
    hook = model.attn.drop_weights.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        model(x)
    hook.remove()
    return tuple(seen[0])


@pytest.mark.parametrize("fixed", [False, True])
def test_attention_weights_are_no_map_of_the_image(fixed):
    torch.manual_seed(0)
    model, x = TinyViT(fixed=fixed).eval(), torch.randn(2, 1, 16, 16)
    assert _weights_shape(model, x) == (2, 2, 17, 17)  # 4-D, one row per image: map-shaped
    maps = image_maps(model, x)
    assert "attn.drop_weights" not in maps and maps["patch"] == (1, 8, 4, 4)
    assert default_layer(model, x) == "patch"
    cam = gradcam(model, x)
    assert cam.shape == (2, 16, 16) and bool((cam.amax((1, 2)) > 0).all())


def test_monai_vit_grad_cam_is_at_its_last_attentions_input():
    pytest.importorskip("einops")  # MONAI's ViT needs it
    from monai.networks.nets import ViT

    class Logits(nn.Module):  # MONAI's ViT returns (logits, hidden states)
        def __init__(self):
            super().__init__()
            self.net = ViT(in_channels=1, img_size=(16, 16), patch_size=(4, 4), hidden_size=16,
                           mlp_dim=32, num_layers=1, num_heads=2, classification=True,
                           num_classes=10, spatial_dims=2)  # fmt: skip

        def forward(self, x):
            return self.net(x)[0]

    torch.manual_seed(0)
    model, x = Logits().eval(), torch.randn(2, 1, 16, 16)
    layer = default_layer(model, x)
    assert layer == "net.blocks.0.norm1"  # tokens (B, 16, 16) on the 4×4 patch grid
    assert not any("attn" in name for name in image_maps(model, x))
    assert bool((gradcam(model, x).amax((1, 2)) > 0).all())


class ClassToken(nn.Module):
    """The logits read a class token alone, as CvT's: the patch tokens' queries of the last
    block (`query`) make the patch outputs, which the graph joins to the class token by a
    concatenation, but which no logit reads."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(1, 8, 4, stride=4)
        self.query = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        m = self.patch(x)
        cls = m.mean((2, 3))  # the class token, which read every patch
        t = torch.cat([cls[:, None], self.query(m).flatten(2).transpose(1, 2)], 1)
        return self.head(t[:, 0])


def test_a_map_whose_gradient_is_zero_is_not_grad_cams_default():
    torch.manual_seed(0)
    model, x = ClassToken().eval(), torch.randn(2, 1, 16, 16)
    logits, seen = outputs(model.query, lambda: model(x))
    (grad,) = torch.autograd.grad(logits.sum(), seen)  # the graph reaches it: a gradient
    assert seen[0].shape == (2, 8, 4, 4) and not grad.any()  # of zeros
    assert default_layer(model, x) == "patch"
    assert bool((gradcam(model, x).amax((1, 2)) > 0).all())  # a map, not a blank one


def test_hugging_face_cvt_grad_cam_is_not_blank_and_equals_captum():
    transformers = pytest.importorskip("transformers")
    from captum.attr import LayerGradCam

    from test_explain_tokens import captum_patch_map

    class Logits(nn.Module):
        def __init__(self):
            super().__init__()
            config = transformers.CvtConfig(num_channels=1, num_labels=10, embed_dim=[8, 16, 16],
                                            num_heads=[1, 2, 2], depth=[1, 2, 3])  # fmt: skip
            # depth[i] > i: CvT's stage i reads its i-th drop-path rate of depth[i]
            self.net = transformers.CvtForImageClassification(config)

        def forward(self, x):
            return self.net(x).logits

    torch.manual_seed(0)
    model, x = Logits().eval(), torch.randn(2, 1, 32, 32)
    layer = default_layer(model, x)
    # the last attention's input (its tokens on the 2×2 grid), not the last block's queries,
    # whose gradient is zero: a blank map
    assert layer == "net.cvt.encoder.stages.2.layers.2.layernorm_before"
    cam = gradcam(model, x)
    assert bool((cam.amax((1, 2)) > 0).all())
    ref = captum_patch_map(model, x, layer, 2, LayerGradCam)
    torch.testing.assert_close(cam, ref, atol=1e-6, rtol=0)


class Gated(nn.Module):
    """A squeeze-and-excitation gate, as MONAI's and Hugging Face's EfficientNet write it
    (a SiLU squeeze, then `torch.sigmoid(s) * x`, s of shape (B, C, 1, 1)), and a plain
    sigmoid on the map after it; both sigmoids pushed to 0/1 by large weights."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.squeeze = nn.Conv2d(4, 4, 1)
        self.excite = nn.Conv2d(4, 4, 1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 10)
        with torch.no_grad():
            self.squeeze.weight.mul_(10.0)
            self.excite.weight.mul_(100.0)
            self.conv2.weight.mul_(100.0)

    def forward(self, x):
        x = self.conv(x)
        s = nn.functional.silu(self.squeeze(x.mean((2, 3), keepdim=True)))  # (B, 4, 1, 1)
        x = torch.sigmoid(self.excite(s)) * x
        x = torch.sigmoid(self.conv2(x))
        return self.head(x.mean((2, 3)))


def test_a_saturated_channel_gate_is_no_finding():
    from cnnlab.diagnose import activation_stats, findings

    torch.manual_seed(0)
    model, x = Gated().eval(), torch.randn(64, 1, 8, 8)
    with torch.no_grad():  # the truth: each sigmoid's share within 0.01 of 0 or 1
        a = model.conv(x)
        s = nn.functional.silu(model.squeeze(a.mean((2, 3), keepdim=True)))
        gate = torch.sigmoid(model.excite(s))
        hidden = torch.sigmoid(model.conv2(gate * a))
    share = {n: float(((t < 0.01) | (t > 0.99)).float().mean()) for n, t in
             (("gate", gate), ("hidden", hidden))}  # fmt: skip
    assert share["gate"] > 0.5 and share["hidden"] > 0.5
    stats = activation_stats(model, x)
    flagged = [f.message for f in findings(acts=stats) if f.code == "saturated"]
    assert len(flagged) == 1  # the hidden sigmoid's, not the gate's
    kinds = {(l.kind, l.gate): l for l in stats.layers}
    assert set(kinds) == {("silu", False), ("sigmoid", True), ("sigmoid", False)}  # no silu gate
    assert kinds["sigmoid", True].saturated == pytest.approx(share["gate"])
    assert kinds["sigmoid", False].saturated == pytest.approx(share["hidden"])
    assert flagged[0].startswith(kinds["sigmoid", False].name)


class UnusedHead(nn.Module):
    """Computes a second head the logits never read, as Hugging Face's SigLIP classifier
    runs its vision model's attention-pooling head and mean-pools the tokens instead."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pooler = nn.Linear(4, 4)  # its output goes nowhere
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        f = self.conv(x).mean((2, 3))
        self.pooled = self.pooler(f)
        return self.head(f)


def test_an_unused_head_is_told_apart_from_a_no_grad_cut():
    from cnnlab.diagnose import findings, gradient_flow

    torch.manual_seed(0)
    model, x, y = UnusedHead(), torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    loss = nn.functional.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, [model.pooler.weight], allow_unused=True)
    assert grad is None and model.pooled.requires_grad  # a graph the loss does not reach
    flow = gradient_flow(model, (x, y))
    assert flow.cut_off == flow.unused == ("pooler",)
    (cut,) = [f for f in findings(flow=flow) if f.code == "cut-off"]
    assert "do not use their output" in cut.message and "no_grad" not in cut.fix


def test_siglip_classifier_head_is_named_unused():
    transformers = pytest.importorskip("transformers")
    from cnnlab.diagnose import findings, gradient_flow

    vision = {"num_channels": 1, "hidden_size": 16, "num_hidden_layers": 1, "image_size": 16,
              "num_attention_heads": 2, "intermediate_size": 32, "patch_size": 4}  # fmt: skip
    config = transformers.SiglipConfig(vision_config=vision, num_labels=3)
    torch.manual_seed(0)
    model = transformers.SiglipForImageClassification(config)
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 0])
    flow = gradient_flow(model, (x, y), output="logits")
    head = {n for n, _ in model.named_modules() if n.startswith("vision_model.head.")}
    assert set(flow.unused) & head and set(flow.unused) == set(flow.cut_off)
    (cut,) = [f for f in findings(flow=flow) if f.code == "cut-off"]
    assert "do not use their output" in cut.message


def test_logits_through_a_final_tanh_get_a_note_with_their_ceiling():
    """MONAI's ViT ends its classification head in nn.Tanh (post_activation="Tanh"): logits
    within [-1, 1], whose softmax never passes e²/(e² + K − 1). Truth: torch's softmax of the
    most apart such logits (one 1, the others -1)."""
    from cnnlab.train import TrainConfig, train
    from cnnlab.train.guard import tanh_ceiling

    apart = torch.full((10,), -1.0)
    apart[0] = 1.0
    assert tanh_ceiling(10) == pytest.approx(float(apart.softmax(0)[0]))  # 45.1 %
    torch.manual_seed(0)
    ended = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Tanh())
    notes = train(ended, "digits", config=TrainConfig(epochs=1, precision="fp32"))["notes"]
    said = [n for n in notes if "final tanh" in n]
    assert len(said) == 1 and "45.1%" in said[0] and "post_activation=None" in said[0]
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    notes = train(plain, "digits", config=TrainConfig(epochs=1, precision="fp32"))["notes"]
    assert not [n for n in notes if "tanh" in n]


def test_monai_vit_logits_come_from_a_tanh():
    pytest.importorskip("einops")
    from monai.networks.nets import ViT

    from cnnlab.train.guard import tanh_note

    torch.manual_seed(0)
    vit = ViT(in_channels=1, img_size=(16, 16), patch_size=(4, 4), hidden_size=16, mlp_dim=32,
              num_layers=1, num_heads=2, classification=True, num_classes=10,
              spatial_dims=2)  # fmt: skip
    assert len(tanh_note(vit(torch.randn(4, 1, 16, 16))[0])) == 1


def test_a_probe_pools_a_layer_of_tokens_to_the_cap():
    """A ViT's (B, N, C) tokens were flattened whole (a ViT-B's 197×768: 151,296 features an
    image) where a map is pooled to at most `cap`. Truth: torch's adaptive_avg_pool1d of the
    tokens with their channels first, read by a plain forward hook."""
    from cnnlab.explain.probe import extract_features

    torch.manual_seed(0)
    model, x = TinyViT(size=32).eval(), torch.randn(6, 1, 32, 32)
    y = torch.arange(6) % 2
    with torch.no_grad():
        _, seen = outputs(model.attn, lambda: model(x))
    assert seen[0].shape == (6, 65, 8)  # 64 patches and a class token of 8 channels
    feats, _ = extract_features(model, (x, y), ["attn"], cap=8 * 16)
    expected = nn.functional.adaptive_avg_pool1d(seen[0].transpose(1, 2), 16).flatten(1)
    assert feats["attn"].shape == (6, 8 * 16)
    torch.testing.assert_close(feats["attn"], expected)


def test_activation_maximisation_of_a_layer_of_tokens_reads_its_middle_token():
    """`cnnlab visualize --actmax` on a ViT block, a Swin or a SigLIP encoder layer ((B, N, C)
    tokens, channels moved first) raised ValueError from inside. Truth: the hooked output of
    the returned images at the middle token."""
    from cnnlab.explain import activation_maximization

    torch.manual_seed(0)
    model, x = TinyViT().eval(), torch.randn(8, 1, 16, 16)
    res = activation_maximization(model, "attn", [0, 3], steps=4, restarts=1, data=x)
    with torch.no_grad():
        _, seen = outputs(model.attn, lambda: (model(res.images), model(x)))
    assert seen[0].shape == (2, 17, 8)  # 16 patches and a class token
    expected = seen[0][torch.arange(2), 17 // 2, torch.tensor([0, 3])]
    torch.testing.assert_close(res.activation, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(res.data_max, seen[1][:, 17 // 2, [0, 3]].amax(0))


def test_an_imported_model_ending_in_tanh_gets_the_note(tmp_path, capsys):
    from safetensors.torch import save_model

    from cnnlab.cli import main

    body = "nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Tanh())"
    (tmp_path / "net.py").write_text(f"from torch import nn\n\n\ndef make():\n    return {body}\n")
    torch.manual_seed(0)
    weights = tmp_path / "w.safetensors"
    save_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Tanh()), str(weights))
    argv = ["import", "--model", f"{tmp_path / 'net.py'}:make", "--weights", str(weights),
            "--data", "digits", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "final tanh" in out and "45.1%" in out
