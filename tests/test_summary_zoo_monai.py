"""More of MONAI's networks for summary's zoo (test_summary_zoo.FAMILIES takes them in): SENet154,
SE-ResNeXt50, DenseNet-264 and HighResNet; the U-Nets whose decoders upsample by transposed
convs and interpolation (UNet, BasicUNet, UNet++, AttentionUnet, SegResNet and its deep
supervision, DynUNet, FlexibleUNet on an EfficientNet, MedNeXt), by max unpooling (QuickNAT),
through a Swin encoder (SwinUNETR) or a ViT (UNETR); a ViT classifier, V-Net, AHNet, an
autoencoder and a variational one, a flattening classifier and a registration net (LocalNet);
all 2-D, random weights. MONAI_MORE maps a name to (make(full), (C, H, W) for full, (C, H, W)
small), as FAMILIES does; a segmentation net's "full" size is a common 256×256 one."""

from __future__ import annotations

from torch import nn


def monai_2d(name: str, **kwargs) -> nn.Module:
    import monai.networks.nets as nets

    kwargs.setdefault("in_channels", 3)
    return getattr(nets, name)(spatial_dims=2, **kwargs)


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


# name -> (arguments at small widths, arguments at MONAI's defaults or a common size)
_MORE = {
    "BasicUNetPlusPlus": ({"out_channels": 2, "features": (8, 8, 16, 32, 64, 8)},
                          {"out_channels": 2}),
    "SegResNetDS": ({"out_channels": 2, "init_filters": 8}, {"out_channels": 2}),
    "FlexibleUNet": ({"out_channels": 2, "backbone": "efficientnet-b0"},) * 2,
    "MedNeXtS": ({"out_channels": 2},) * 2,
    "SwinUNETR": ({"out_channels": 2, "feature_size": 12, "depths": (1, 1, 1, 1),
                   "num_heads": (1, 1, 2, 2)}, {"out_channels": 2}),
    "AutoEncoder": ({"out_channels": 3, "channels": (8, 16, 32), "strides": (2, 2, 2)},
                    {"out_channels": 3, "channels": (32, 64, 128, 256), "strides": (2,) * 4}),
    "LocalNet": ({"out_channels": 2, "num_channel_initial": 8, "extract_levels": (0, 1, 2)},
                 {"out_channels": 2, "num_channel_initial": 32, "extract_levels": (0, 1, 2, 3)}),
    "VNet": ({"out_channels": 2},) * 2,
    "ViT": ({"img_size": 32, "patch_size": 8, "hidden_size": 64, "mlp_dim": 128, "num_layers": 2,
             "num_heads": 4, "classification": True, "num_classes": 10},
            {"img_size": 224, "patch_size": 16, "classification": True, "num_classes": 1000}),
    "UNETR": ({"out_channels": 2, "img_size": 32, "feature_size": 8, "hidden_size": 48,
               "mlp_dim": 96, "num_heads": 4}, {"out_channels": 2, "img_size": 256}),
    "AHNet": ({"out_channels": 2, "psp_block_num": 0, "upsample_mode": "bilinear"},) * 2,
}  # fmt: skip
_GRAY = {"VNet", "AHNet"}  # one input channel


def more(name: str, full: bool) -> nn.Module:
    """A network of `_MORE`, QuickNAT, the Classifier (neither takes spatial_dims) or the
    VarAutoEncoder (sized for its input)."""
    import monai.networks.nets as nets

    if name == "Quicknat":
        return nets.Quicknat(num_classes=2, num_channels=3, num_filters=64 if full else 8)
    if name == "VarAutoEncoder":
        if full:
            return nets.VarAutoEncoder(2, (3, 128, 128), 3, 64, (16, 32, 64, 128), (2, 2, 2, 2))
        return nets.VarAutoEncoder(2, (3, 32, 32), 3, 8, (8, 16), (2, 2))
    if name == "Classifier":
        if full:
            return nets.Classifier((3, 128, 128), 10, (16, 32, 64, 128), (2, 2, 2, 2))
        return nets.Classifier((3, 32, 32), 10, (8, 16), (2, 2))
    return monai_2d(name, in_channels=1 if name in _GRAY else 3, **_MORE[name][full])


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
    "monai-unetplusplus": (lambda full: more("BasicUNetPlusPlus", full), (3, 256, 256),
                           (3, 32, 32)),
    "monai-segresnet-ds": (lambda full: more("SegResNetDS", full), (3, 256, 256), (3, 32, 32)),
    "monai-flexible-unet": (lambda full: more("FlexibleUNet", full), (3, 256, 256), (3, 64, 64)),
    "monai-mednext": (lambda full: more("MedNeXtS", full), (3, 256, 256), (3, 32, 32)),
    "monai-swin-unetr": (lambda full: more("SwinUNETR", full), (3, 256, 256), (3, 64, 64)),
    "monai-quicknat": (lambda full: more("Quicknat", full), (3, 256, 256), (3, 32, 32)),
    "monai-vnet": (lambda full: more("VNet", full), (1, 256, 256), (1, 32, 32)),
    "monai-ahnet": (lambda full: more("AHNet", full), (1, 256, 256), (1, 64, 64)),
    "monai-autoencoder": (lambda full: more("AutoEncoder", full), (3, 256, 256), (3, 32, 32)),
    "monai-var-autoencoder": (lambda full: more("VarAutoEncoder", full), (3, 128, 128),
                              (3, 32, 32)),
    "monai-vit": (lambda full: more("ViT", full), (3, 224, 224), (3, 32, 32)),
    "monai-unetr": (lambda full: more("UNETR", full), (3, 256, 256), (3, 32, 32)),
    "monai-classifier": (lambda full: more("Classifier", full), (3, 128, 128), (3, 32, 32)),
    "monai-localnet": (lambda full: more("LocalNet", full), (3, 256, 256), (3, 32, 32)),
}  # fmt: skip
