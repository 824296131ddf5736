"""Architectures written by other people, for summary's tests and benchmark: MONAI's and
Hugging Face transformers' vision models (random weights, built from configs, no hub), and
small ShuffleNet V2 / GhostNet / Inception / Xception / SqueezeNet / MobileNet V3 modules
written here after their papers where no installed package has them.

FAMILIES maps a name to (make(full) -> nn.Module, (C, H, W) for full, (C, H, W) small):
`full` builds the published size (for the benchmark), otherwise a narrow, shallow one of the
same structure (for the tests, to keep them fast).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from test_summary_zoo_hf import HF_MORE, HF_PERCEIVER
from test_summary_zoo_monai import MONAI_MORE

# --- written here -----------------------------------------------------------------------------


def conv_bn(c_in: int, c_out: int, k: int = 1, s: int = 1, groups: int = 1, act=nn.ReLU):
    layers = [nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False)]
    layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers, *([act(inplace=True)] if act else []))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    x = x.view(b, groups, c // groups, h, w)  # (B, g, C/g, H, W)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet V2 unit (Ma et al. 2018; torchvision's InvertedResidual): a channel split
    (chunk) at stride 1, two branches at stride 2, concatenation and a channel shuffle."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride, half = stride, c_out // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                conv_bn(c_in, c_in, 3, stride, groups=c_in, act=None), conv_bn(c_in, half)
            )
        c2 = c_in if stride > 1 else half
        self.branch2 = nn.Sequential(
            conv_bn(c2, half), conv_bn(half, half, 3, stride, groups=half, act=None),
            conv_bn(half, half),
        )  # fmt: skip

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, repeats=(4, 8, 4), widths=(24, 116, 232, 464, 1024), classes=1000):
        super().__init__()
        self.conv1 = conv_bn(3, widths[0], 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, c = [], widths[0]
        for n, w in zip(repeats, widths[1:4], strict=True):
            stages.append(
                nn.Sequential(ShuffleUnit(c, w, 2), *[ShuffleUnit(w, w, 1) for _ in range(n - 1)])
            )
            c = w
        self.stages = nn.Sequential(*stages)
        self.conv5 = conv_bn(c, widths[4])
        self.fc = nn.Linear(widths[4], classes)

    def forward(self, x):
        x = self.conv5(self.stages(self.maxpool(self.conv1(x))))
        return self.fc(x.mean([2, 3]))


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return F.relu6(x + 3.0) / 6.0


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018) with a hard sigmoid gate, as GhostNet's."""

    def __init__(self, c: int, reduce: int = 4) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(c, max(8, c // reduce), 1)
        self.expand = nn.Conv2d(max(8, c // reduce), c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)  # (B, C, 1, 1)
        return x * hard_sigmoid(self.expand(F.relu(self.reduce(s))))


class GhostModule(nn.Module):
    """GhostNet's module (Han et al. 2020): a primary conv, cheap depthwise 'ghost' maps,
    concatenated and sliced back to the wanted width."""

    def __init__(self, c_in: int, c_out: int, relu: bool = True) -> None:
        super().__init__()
        self.c_out, init = c_out, (c_out + 1) // 2
        act = nn.ReLU if relu else None
        self.primary = conv_bn(c_in, init, act=act)
        self.cheap = conv_bn(init, init, 3, groups=init, act=act)

    def forward(self, x):
        x1 = self.primary(x)
        out = torch.cat([x1, self.cheap(x1)], dim=1)
        return out[:, : self.c_out, :, :]


class GhostBottleneck(nn.Module):
    def __init__(self, c_in: int, mid: int, c_out: int, k: int, s: int, se: bool) -> None:
        super().__init__()
        self.ghost1 = GhostModule(c_in, mid)
        self.dw = conv_bn(mid, mid, k, s, groups=mid, act=None) if s > 1 else None
        self.se = SqueezeExcite(mid) if se else None
        self.ghost2 = GhostModule(mid, c_out, relu=False)
        self.shortcut = nn.Sequential()
        if s > 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                conv_bn(c_in, c_in, k, s, groups=c_in, act=None), conv_bn(c_in, c_out, act=None)
            )

    def forward(self, x):
        y = self.ghost1(x)
        y = self.dw(y) if self.dw is not None else y
        y = self.se(y) if self.se is not None else y
        return self.ghost2(y) + self.shortcut(x)


GHOST_CFG = [  # k, mid, out, se, stride (GhostNet 1.0x)
    (3, 16, 16, 0, 1), (3, 48, 24, 0, 2), (3, 72, 24, 0, 1), (5, 72, 40, 1, 2),
    (5, 120, 40, 1, 1), (3, 240, 80, 0, 2), (3, 200, 80, 0, 1), (3, 184, 80, 0, 1),
    (3, 184, 80, 0, 1), (3, 480, 112, 1, 1), (3, 672, 112, 1, 1), (5, 672, 160, 1, 2),
    (5, 960, 160, 0, 1), (5, 960, 160, 1, 1), (5, 960, 160, 0, 1), (5, 960, 160, 1, 1),
]  # fmt: skip


class GhostNet(nn.Module):
    def __init__(self, cfg=GHOST_CFG, classes: int = 1000) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2)
        blocks, c = [], 16
        for k, mid, out, se, s in cfg:
            blocks.append(GhostBottleneck(c, mid, out, k, s, bool(se)))
            c = out
        self.blocks = nn.Sequential(*blocks, conv_bn(c, c * 6))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Conv2d(c * 6, 1280, 1), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x):
        x = self.head(self.pool(self.blocks(self.stem(x))))
        return self.classifier(torch.flatten(x, 1))


class InceptionA(nn.Module):
    """Inception V3's 35×35 block (Szegedy et al. 2016): four branches concatenated."""

    def __init__(self, c_in: int, pool: int) -> None:
        super().__init__()
        self.b1 = conv_bn(c_in, 64)
        self.b5 = nn.Sequential(conv_bn(c_in, 48), conv_bn(48, 64, 5))
        self.b3 = nn.Sequential(conv_bn(c_in, 64), conv_bn(64, 96, 3), conv_bn(96, 96, 3))
        self.bp = conv_bn(c_in, pool)

    def forward(self, x):
        pooled = self.bp(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([self.b1(x), self.b5(x), self.b3(x), pooled], 1)


class InceptionB(nn.Module):
    """Inception V3's grid reduction: strided convs and a max pool, concatenated."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.b3 = conv_bn(c_in, 384, 3, 2)
        self.b3dbl = nn.Sequential(conv_bn(c_in, 64), conv_bn(64, 96, 3), conv_bn(96, 96, 3, 2))

    def forward(self, x):
        return torch.cat([self.b3(x), self.b3dbl(x), F.max_pool2d(x, 3, 2, 1)], 1)


class Inception(nn.Module):
    def __init__(self, blocks: int = 3, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn(3, 32, 3, 2), conv_bn(32, 32, 3), conv_bn(32, 64, 3), nn.MaxPool2d(3, 2, 1),
            conv_bn(64, 80), conv_bn(80, 192, 3), nn.MaxPool2d(3, 2, 1),
        )  # fmt: skip
        mixed, c = [], 192
        for i in range(blocks):
            mixed.append(InceptionA(c, 32 if i == 0 else 64))
            c = 64 + 64 + 96 + (32 if i == 0 else 64)
        self.mixed = nn.Sequential(*mixed, InceptionB(c))
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(c + 384 + 96, classes)

    def forward(self, x):
        x = self.mixed(self.stem(x))
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.fc(self.dropout(torch.flatten(x, 1)))


class SeparableConv(nn.Module):
    """Xception's depthwise-separable conv (Chollet 2017): depthwise 3×3, then pointwise."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, 1, 1, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, reps: int, stride: int, first_relu: bool = True):
        super().__init__()
        layers, c = [], c_in
        for i in range(reps):
            layers += [nn.ReLU(inplace=first_relu or i > 0), SeparableConv(c, c_out)]
            layers.append(nn.BatchNorm2d(c_out))
            c = c_out
        if not first_relu:
            layers = layers[1:]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*layers)
        self.skip = None
        if c_out != c_in or stride != 1:
            self.skip = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        skip = x if self.skip is None else self.skip(x)
        return self.rep(x) + skip


class Xception(nn.Module):
    def __init__(self, middle: int = 8, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 32, 3, 2), conv_bn(32, 64, 3))
        self.entry = nn.Sequential(
            XceptionBlock(64, 128, 2, 2, first_relu=False), XceptionBlock(128, 256, 2, 2),
            XceptionBlock(256, 728, 2, 2),
        )  # fmt: skip
        self.middle = nn.Sequential(*[XceptionBlock(728, 728, 3, 1) for _ in range(middle)])
        self.exit = nn.Sequential(
            XceptionBlock(728, 1024, 2, 2), SeparableConv(1024, 1536), nn.BatchNorm2d(1536),
            nn.ReLU(inplace=True), SeparableConv(1536, 2048), nn.BatchNorm2d(2048),
            nn.ReLU(inplace=True),
        )  # fmt: skip
        self.fc = nn.Linear(2048, classes)

    def forward(self, x):
        x = self.exit(self.middle(self.entry(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).view(x.size(0), -1))


class Fire(nn.Module):
    """SqueezeNet's fire module (Iandola et al. 2016): squeeze 1×1, expand 1×1 and 3×3, cat."""

    def __init__(self, c_in: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(c_in, squeeze, 1)
        self.expand1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3 = nn.Conv2d(squeeze, expand, 3, padding=1)
        self.act = nn.ReLU(inplace=True)  # one module, called three times a forward

    def forward(self, x):
        x = self.act(self.squeeze(x))
        return torch.cat([self.act(self.expand1(x)), self.act(self.expand3(x))], 1)


def squeezenet(classes: int = 1000) -> nn.Module:
    """SqueezeNet 1.1 (torchvision's layout), ceil-mode pools included."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(64, 16, 64), Fire(128, 16, 64), nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(128, 32, 128), Fire(256, 32, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(256, 48, 192), Fire(384, 48, 192), Fire(384, 64, 256), Fire(512, 64, 256),
        nn.Dropout(0.5), nn.Conv2d(512, classes, 1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip


class MBConv3(nn.Module):
    """MobileNet V3's block (Howard et al. 2019): expand, depthwise, SE, project, hardswish."""

    def __init__(self, c_in: int, mid: int, c_out: int, k: int, s: int, se: bool, hs: bool):
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        self.expand = conv_bn(c_in, mid, act=act) if mid != c_in else nn.Identity()
        self.dw = conv_bn(mid, mid, k, s, groups=mid, act=act)
        self.se = SqueezeExcite(mid) if se else nn.Identity()
        self.project = conv_bn(mid, c_out, act=None)
        self.residual = s == 1 and c_in == c_out

    def forward(self, x):
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y


MNV3_CFG = [  # k, mid, out, se, hardswish, stride (MobileNet V3 large)
    (3, 16, 16, 0, 0, 1), (3, 64, 24, 0, 0, 2), (3, 72, 24, 0, 0, 1), (5, 72, 40, 1, 0, 2),
    (5, 120, 40, 1, 0, 1), (5, 120, 40, 1, 0, 1), (3, 240, 80, 0, 1, 2), (3, 200, 80, 0, 1, 1),
    (3, 184, 80, 0, 1, 1), (3, 184, 80, 0, 1, 1), (3, 480, 112, 1, 1, 1), (3, 672, 112, 1, 1, 1),
    (5, 672, 160, 1, 1, 2), (5, 960, 160, 1, 1, 1), (5, 960, 160, 1, 1, 1),
]  # fmt: skip


class MobileNetV3(nn.Module):
    def __init__(self, cfg=MNV3_CFG, classes: int = 1000) -> None:
        super().__init__()
        blocks, c = [conv_bn(3, 16, 3, 2, act=nn.Hardswish)], 16
        for k, mid, out, se, hs, s in cfg:
            blocks.append(MBConv3(c, mid, out, k, s, bool(se), bool(hs)))
            c = out
        self.features = nn.Sequential(*blocks, conv_bn(c, c * 6, act=nn.Hardswish))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(c * 6, 1280), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(1280, classes)
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# --- MONAI and Hugging Face ------------------------------------------------------------------


def _quiet(make: Callable[[], nn.Module]) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        return make().eval()


def monai_densenet(full: bool) -> nn.Module:
    from monai.networks.nets import DenseNet121

    if full:
        return DenseNet121(spatial_dims=2, in_channels=3, out_channels=1000)
    return DenseNet121(spatial_dims=2, in_channels=3, out_channels=10, block_config=(2, 2, 2, 2),
                       init_features=16, growth_rate=8)  # fmt: skip


def monai_efficientnet(full: bool) -> nn.Module:
    from monai.networks.nets import EfficientNetBN

    return EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=2,
                          num_classes=1000 if full else 10)  # fmt: skip


def monai_resnet(full: bool) -> nn.Module:
    from monai.networks.nets import ResNet

    layers = [3, 4, 6, 3] if full else [1, 1, 1, 1]
    widths = [64, 128, 256, 512] if full else [8, 16, 32, 64]
    return ResNet("bottleneck", layers, widths, spatial_dims=2, n_input_channels=3,
                  conv1_t_stride=2, num_classes=1000 if full else 10)  # fmt: skip


def monai_seresnet(full: bool) -> nn.Module:
    from monai.networks.nets import SEResNet50

    layers = (3, 4, 6, 3) if full else (1, 1, 1, 1)
    return SEResNet50(
        layers=layers, spatial_dims=2, in_channels=3, num_classes=1000 if full else 10
    )


# BiT as google/bit-50: weight-standardized convs padded 'same' by a child module
BIT = {"layer_type": "bottleneck", "global_padding": "SAME", "embedding_dynamic_padding": True}


def hf(kind: str, full: bool) -> nn.Module:
    import transformers as t

    small = {
        "MobileNetV1": {"depth_multiplier": 0.25},
        "MobileNetV2": {"depth_multiplier": 0.35},
        "ResNet": {"embedding_size": 16, "hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1]},
        "RegNet": {"embedding_size": 16, "hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 2, 1],
                   "groups_width": 8},
        "ConvNext": {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 2, 1]},
        "EfficientNet": {"width_coefficient": 0.5, "depth_coefficient": 0.3,
                         "hidden_dim": 640},  # the top conv's width at 0.5
        "MobileViT": {"hidden_sizes": [16, 24, 32], "neck_hidden_sizes": [8, 8, 16, 16, 24, 32, 64],
                      "num_attention_heads": 2, "image_size": 64},
        "MobileViTV2": {"width_multiplier": 0.25, "n_attn_blocks": [1, 1, 1], "image_size": 64},
        "ConvNextV2": {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 2, 1]},
        "PoolFormer": {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 2, 1]},
        "Bit": {**BIT, "embedding_size": 16, "hidden_sizes": [32, 64, 128, 256],
                "depths": [1, 1, 1, 1], "num_groups": 8},
        "Levit": {"hidden_sizes": [32, 64, 96], "num_attention_heads": [2, 4, 6],
                  "depths": [1, 1, 1], "key_dim": [8, 8, 8], "image_size": 64,
                  "down_ops": [["Subsample", 8, 4, 4, 2, 2], ["Subsample", 8, 8, 4, 2, 2]]},
        "SwiftFormer": {"depths": [1, 1, 1, 1], "embed_dims": [16, 24, 32, 48]},
        "FocalNet": {"embed_dim": 16, "hidden_sizes": [32, 64, 128, 128], "depths": [1, 1, 2, 1]},
        "HGNetV2": {"stem_channels": [3, 8, 16], "stage_in_channels": [16, 32, 64, 128],
                    "stage_mid_channels": [8, 16, 32, 64], "stage_out_channels": [32, 64, 128, 256],
                    "stage_numb_of_layers": [2, 2, 2, 2], "hidden_sizes": [32, 64, 128, 256],
                    "embedding_size": 16},
        "TextNet": {"hidden_sizes": [16, 16, 32, 64, 128], "stem_out_channels": 16},
        "Segformer": {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1],
                      "num_attention_heads": [1, 2, 2, 4]},
        "PvtV2": {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1],
                  "num_attention_heads": [1, 2, 2, 4]},
        "Dinov2": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                   "intermediate_size": 64, "image_size": 64, "patch_size": 8},
        "ViT": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 64, "image_size": 64, "patch_size": 8},
        "Hiera": {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2],
                  "image_size": [64, 64]},
        "Pvt": {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1],
                "num_attention_heads": [1, 2, 2, 4], "image_size": 64},
        "PPLCNet": {"scale": 0.25},
    }  # fmt: skip
    full_args = {"RegNet": {"hidden_sizes": [24, 56, 152, 368], "depths": [1, 1, 4, 7],
                            "groups_width": 8, "embedding_size": 32}, "Bit": BIT}  # fmt: skip
    config = getattr(t, f"{kind}Config")(**(full_args.get(kind, {}) if full else small[kind]))
    return getattr(t, f"{kind}ForImageClassification")(config)


FAMILIES: dict[str, tuple[Callable[[bool], nn.Module], tuple, tuple]] = {
    "monai-densenet121": (monai_densenet, (3, 224, 224), (3, 64, 64)),
    "monai-efficientnet-b0": (monai_efficientnet, (3, 224, 224), (3, 64, 64)),
    "monai-resnet50": (monai_resnet, (3, 224, 224), (3, 64, 64)),
    "monai-seresnet50": (monai_seresnet, (3, 224, 224), (3, 64, 64)),
    "hf-mobilenet-v1": (lambda full: hf("MobileNetV1", full), (3, 224, 224), (3, 64, 64)),
    "hf-mobilenet-v2": (lambda full: hf("MobileNetV2", full), (3, 224, 224), (3, 64, 64)),
    "hf-resnet": (lambda full: hf("ResNet", full), (3, 224, 224), (3, 64, 64)),
    "hf-regnet": (lambda full: hf("RegNet", full), (3, 224, 224), (3, 64, 64)),
    "hf-convnext": (lambda full: hf("ConvNext", full), (3, 224, 224), (3, 64, 64)),
    "hf-efficientnet": (lambda full: hf("EfficientNet", full), (3, 224, 224), (3, 64, 64)),
    "hf-mobilevit": (lambda full: hf("MobileViT", full), (3, 256, 256), (3, 64, 64)),
    "hf-mobilevit-v2": (lambda full: hf("MobileViTV2", full), (3, 256, 256), (3, 64, 64)),
    "hf-convnext-v2": (lambda full: hf("ConvNextV2", full), (3, 224, 224), (3, 64, 64)),
    "hf-poolformer": (lambda full: hf("PoolFormer", full), (3, 224, 224), (3, 64, 64)),
    "hf-bit": (lambda full: hf("Bit", full), (3, 224, 224), (3, 64, 64)),
    "hf-levit": (lambda full: hf("Levit", full), (3, 224, 224), (3, 64, 64)),
    "hf-swiftformer": (lambda full: hf("SwiftFormer", full), (3, 224, 224), (3, 64, 64)),
    "hf-focalnet": (lambda full: hf("FocalNet", full), (3, 224, 224), (3, 64, 64)),
    "hf-hgnet-v2": (lambda full: hf("HGNetV2", full), (3, 224, 224), (3, 64, 64)),
    "hf-textnet": (lambda full: hf("TextNet", full), (3, 640, 640), (3, 64, 64)),
    "hf-segformer": (lambda full: hf("Segformer", full), (3, 224, 224), (3, 64, 64)),
    "hf-pvt-v2": (lambda full: hf("PvtV2", full), (3, 224, 224), (3, 64, 64)),
    "hf-dinov2": (lambda full: hf("Dinov2", full), (3, 224, 224), (3, 64, 64)),
    "hf-vit": (lambda full: hf("ViT", full), (3, 224, 224), (3, 64, 64)),
    "hf-hiera": (lambda full: hf("Hiera", full), (3, 224, 224), (3, 64, 64)),
    "hf-pvt": (lambda full: hf("Pvt", full), (3, 224, 224), (3, 64, 64)),
    "hf-pplcnet": (lambda full: hf("PPLCNet", full), (3, 224, 224), (3, 64, 64)),
    "shufflenet-v2": (
        lambda full: ShuffleNetV2() if full else ShuffleNetV2((2, 2, 1), (8, 16, 32, 64, 64), 10),
        (3, 224, 224), (3, 64, 64),
    ),
    "ghostnet": (
        lambda full: GhostNet() if full else GhostNet(GHOST_CFG[:6:2] + GHOST_CFG[11:13], 10),
        (3, 224, 224), (3, 64, 64),
    ),
    "inception": (lambda full: Inception(3 if full else 1), (3, 299, 299), (3, 80, 80)),
    "xception": (lambda full: Xception(8 if full else 1), (3, 299, 299), (3, 96, 96)),
    "squeezenet": (lambda full: squeezenet(1000 if full else 10), (3, 224, 224), (3, 64, 64)),
    "mobilenet-v3": (
        lambda full: MobileNetV3() if full else MobileNetV3(MNV3_CFG[::3], 10),
        (3, 224, 224), (3, 64, 64),
    ),
}  # fmt: skip


FAMILIES.update(MONAI_MORE)  # SENet154, SE-ResNeXt50, DenseNet-264, HighResNet, U-Nets
FAMILIES.update(HF_MORE)  # Swins, CvT, BEiT, DeiT, CLIP's and SigLIP's towers, ...
FAMILIES.update(HF_PERCEIVER)  # Perceiver IO's three image classifiers


def make(name: str, full: bool = False) -> tuple[nn.Module, tuple[int, int, int]]:
    """The family's model (eval mode, seed 0) and its input size."""
    factory, big, small = FAMILIES[name]
    return _quiet(lambda: factory(full)), big if full else small
