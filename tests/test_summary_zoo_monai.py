"""More of MONAI's networks for summary's zoo (test_summary_zoo.FAMILIES takes them in): SENet154,
SE-ResNeXt50, DenseNet-264 and HighResNet, and the U-Nets whose decoders upsample by
transposed convs and interpolation (UNet, BasicUNet, AttentionUnet, SegResNet, DynUNet), all 2-D,
random weights. MONAI_MORE maps a name to (make(full), (C, H, W) for full, (C, H, W) small), as
FAMILIES does; a segmentation net's "full" size is a common 256×256 one."""

from __future__ import annotations

from torch import nn


def monai_2d(name: str, **kwargs) -> nn.Module:
    import monai.networks.nets as nets

    return getattr(nets, name)(spatial_dims=2, in_channels=3, **kwargs)


def senet(name: str, full: bool) -> nn.Module:
    small = {} if full else {"layers": (1, 1, 1, 1)}
    return monai_2d(name, num_classes=1000 if full else 10, **small)


def densenet264(full: bool) -> nn.Module:
    if full:
        return monai_2d("DenseNet264", out_channels=1000)
    return monai_2d("DenseNet264", out_channels=10, block_config=(2, 2, 4, 2), init_features=16,
                    growth_rate=8)  # fmt: skip


def unet(name: str, full: bool) -> nn.Module:
    """UNet and AttentionUnet: `channels` and `strides`; BasicUNet: six `features`."""
    if name == "BasicUNet":
        features = (32, 32, 64, 128, 256, 32) if full else (8, 8, 16, 32, 64, 8)
        return monai_2d(name, out_channels=2, features=features)
    channels, strides = ((16, 32, 64, 128, 256), (2, 2, 2, 2)) if full else ((8, 16, 32), (2, 2))
    return monai_2d(name, out_channels=2, channels=channels, strides=strides)


def dynunet(full: bool) -> nn.Module:
    n = 5 if full else 3
    return monai_2d("DynUNet", out_channels=2, kernel_size=[3] * n, strides=[1] + [2] * (n - 1),
                    upsample_kernel_size=[2] * (n - 1))  # fmt: skip


MONAI_MORE = {
    "monai-senet154": (lambda full: senet("SENet154", full), (3, 224, 224), (3, 64, 64)),
    "monai-seresnext50": (lambda full: senet("SEResNeXt50", full), (3, 224, 224), (3, 64, 64)),
    "monai-densenet264": (densenet264, (3, 224, 224), (3, 64, 64)),
    "monai-highresnet": (lambda full: monai_2d("HighResNet", out_channels=2), (3, 224, 224),
                         (3, 32, 32)),
    "monai-unet": (lambda full: unet("UNet", full), (3, 256, 256), (3, 32, 32)),
    "monai-basicunet": (lambda full: unet("BasicUNet", full), (3, 256, 256), (3, 32, 32)),
    "monai-attention-unet": (lambda full: unet("AttentionUnet", full), (3, 256, 256), (3, 32, 32)),
    "monai-segresnet": (lambda full: monai_2d("SegResNet", out_channels=2), (3, 256, 256),
                        (3, 32, 32)),
    "monai-dynunet": (dynunet, (3, 256, 256), (3, 32, 32)),
}  # fmt: skip
