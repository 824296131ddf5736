"""Models cnnlab did not build, shared by the explain tests, and the checks on the shared
mechanism (cnnlab.inspect): model state restored, layer names, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain import feature_maps, gradcam, saliency, smoothgrad
from cnnlab.inspect import default_layer


class Block(nn.Module):
    """torchvision's BasicBlock: one shared ReLU module called twice, `out += identity`."""

    def __init__(self, cin: int, cout: int, stride: int = 1, inplace: bool = True):
        super().__init__()
        self.inplace = inplace
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.inplace:
            out += identity
        else:
            out = out + identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, inplace: bool = True, channels: int = 3, classes: int = 5, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=inplace)
        self.layer1 = nn.Sequential(
            Block(width, width, 1, inplace), Block(width, width, 1, inplace)
        )
        self.layer2 = nn.Sequential(
            Block(width, 2 * width, 2, inplace), Block(2 * width, 2 * width, 1, inplace)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Functional(nn.Module):
    """Activations and pooling as functional calls in forward: no modules to hook for them."""

    def __init__(self, channels: int = 3, classes: int = 5):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 12, 3, padding=1)
        self.fc = nn.Linear(12 * 4 * 4, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def plain(channels: int = 3, classes: int = 5) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, 6, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 12, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(12 * 8 * 8, classes),
    )


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so eval mode matters."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


def resnet_pair(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(ResNet with ReLU(inplace=True) and `+=`, the same weights without in-place ops)."""
    torch.manual_seed(seed)
    inplace = randomize_bn(ResNet(inplace=True), seed).eval()
    copy = ResNet(inplace=False).eval()
    copy.load_state_dict(inplace.state_dict())
    return inplace, copy


def models() -> dict[str, tuple[nn.Module, nn.Module]]:
    """name -> (model, equivalent model without in-place ops), inputs 3×16×16, 5 classes."""
    torch.manual_seed(1)
    functional, seq = Functional().eval(), plain().eval()
    return {"resnet": resnet_pair(), "functional": (functional, functional), "plain": (seq, seq)}


def images(b: int = 4, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, size, size, generator=torch.Generator().manual_seed(seed))


def test_inplace_copy_computes_the_same_function():
    """The non-inplace copy is a valid reference only if both compute the same logits."""
    a, b = resnet_pair()
    x = images()
    torch.testing.assert_close(a(x), b(x))


def test_default_layer_is_the_last_spatial_module_in_forward_order():
    """DESIGN.md's rule: for a ResNet its last stage, for a plain CNN its last spatial module."""
    x = images(1)
    nets = models()
    assert default_layer(nets["resnet"][0], x) == "layer2"
    assert default_layer(nets["functional"][0], x) == "conv2"
    assert default_layer(nets["plain"][0], x) == "4"  # the ReLU after the last conv


def _state(model: nn.Module):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: saliency(m, x),
        lambda m, x: smoothgrad(m, x, n=3),
        lambda m, x: gradcam(m, x),
        lambda m, x: gradcam(m, x, channels_last=True),
        lambda m, x: saliency(m, x, channels_last=True),
        lambda m, x: gradcam(m, x, method="gradcam++", layer="layer1.0.bn2"),
        lambda m, x: feature_maps(m, x, ["layer1", "conv1"]),
    ],
)
def test_model_state_is_restored(call):
    """Mixed train/eval flags, a frozen parameter and a user's hook survive every call."""
    model, _ = resnet_pair()
    model.train()
    model.layer1[0].bn1.eval()
    model.fc.weight.requires_grad_(False)
    model.layer2.register_forward_hook(lambda *a: None)
    before = _state(model)
    tensors = [(p.data_ptr(), p.stride()) for p in model.parameters()]
    x = images(2)
    call(model, x)
    assert _state(model) == before
    assert [(p.data_ptr(), p.stride()) for p in model.parameters()] == tensors
    assert x.grad is None and not x.requires_grad


class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = plain()

    def forward(self, x):
        y = self.net(x)
        return {"logits": y, "aux": y.sum(1)}


def test_tuple_or_dict_output_needs_output_option():
    model = TupleOut().eval()
    x = images(2)
    with pytest.raises(CnnlabError, match="output="):
        gradcam(model, x)
    torch.testing.assert_close(gradcam(model, x, output="logits"), gradcam(model.net, x, layer="4"))
    torch.testing.assert_close(
        saliency(model, x, output=lambda o: o["logits"]), saliency(model.net, x)
    )


def test_bad_inputs_raise_one_clear_error():
    model, _ = resnet_pair()
    x = images(2)
    with pytest.raises(CnnlabError, match="valid layer names: .*layer1.0.conv1"):
        gradcam(model, x, layer="layer9")
    with pytest.raises(CnnlabError, match="not a spatial map.*layer2"):
        gradcam(model, x, layer="fc")
    with pytest.raises(CnnlabError, match="outside the model's classes 0..4"):
        saliency(model, x, target=5)
    with pytest.raises(CnnlabError, match="outside"):
        gradcam(model, x, target=[0, -1])
    with pytest.raises(CnnlabError, match="channels and size"):
        saliency(model, images(2, c=1))
    with pytest.raises(CnnlabError, match="channels and size"):
        saliency(Functional().eval(), images(2, size=20))
    with pytest.raises(CnnlabError, match=r"\(B, C, H, W\)"):
        saliency(model, x[0])
    with pytest.raises(CnnlabError, match="unknown method"):
        gradcam(model, x, method="cam")
    assert isinstance(CnnlabError("x"), Exception)


class _Windows(nn.Module):
    """(B, C, H, W) -> (4B, C, H/2, W/2): each image's four windows as rows (a Swin's layout)."""

    def __init__(self, merge: bool = False):
        super().__init__()
        self.merge = merge

    def forward(self, x):
        if self.merge:
            b4, c, h, w = x.shape
            x = x.view(b4 // 4, 2, 2, c, h, w).permute(0, 3, 1, 4, 2, 5)
            return x.reshape(b4 // 4, c, 2 * h, 2 * w)
        b, c, h, w = x.shape
        x = x.view(b, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(4 * b, c, h // 2, w // 2)


def test_gradcam_at_a_layer_of_window_rows_is_refused():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)]
    model = nn.Sequential(conv, _Windows(), nn.Conv2d(8, 8, 3, padding=1), _Windows(True), *head)
    x = images(3, size=16)
    assert gradcam(model.eval(), x).shape == (3, 16, 16)
    # it gave 12 maps for 3 images, one per window
    with pytest.raises(CnnlabError, match="'2' has output shape .* for 3 images.*: 0, 3"):
        gradcam(model, x, layer="2")
