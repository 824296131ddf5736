"""More of Hugging Face transformers' image classifiers for summary's zoo
(test_summary_zoo.FAMILIES takes HF_MORE in): Swin, Swin V2, Donut's Swin, CvT, BEiT,
Data2Vec-Vision, DeiT (and its distilled head), ViT-MSN, DINOv2 with registers, I-JEPA, and
the vision towers of CLIP, SigLIP and MetaCLIP 2 with a classifier; random weights. HF_MORE
maps a name to (make(full), (C, H, W) for full, (C, H, W) small), as FAMILIES does; "full" is
the library's default config (the published base or tiny model), Swin V2's at its published
256×256 with 8×8 windows.

Small Swins have two blocks in their first stage, the second shifting its windows by
torch.roll, and one in each other stage.

HF_PERCEIVER: the three Perceiver IO image classifiers (learned, Fourier and conv
preprocessing), at the published config (512 latents of 1,024), also in FAMILIES (their
self-attention layers call an nn.Identity on None: no tensor, no row). Not here: SigLIP 2
(its pixel_values are patches already flattened, with their grid's shape beside them, no
(C, H, W) image) and ImageGPT (color-cluster token ids, not pixels)."""

from __future__ import annotations

from torch import nn

# a ViT-shaped encoder, small
VIT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
       "intermediate_size": 64, "image_size": 64, "patch_size": 8}  # fmt: skip
SWIN = {"embed_dim": 16, "depths": [2, 1, 1, 1], "num_heads": [1, 2, 2, 4], "image_size": 64,
        "window_size": 2}  # fmt: skip
TEXT = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 1,
        "intermediate_size": 32, "vocab_size": 100}  # fmt: skip
SMALL = {
    "Swin": SWIN, "Swinv2": SWIN, "DonutSwin": SWIN,
    # CvT builds stage i's drop-path rates by indexing i into them: depth[i] > i
    "Cvt": {"embed_dim": [16, 32, 48], "num_heads": [1, 2, 3], "depth": [1, 2, 3]},
    "Beit": {**VIT, "use_relative_position_bias": True},
    "Data2VecVision": {**VIT, "use_relative_position_bias": True},
    "DeiT": VIT, "ViTMSN": VIT, "Dinov2WithRegisters": VIT, "IJepa": VIT,
}  # fmt: skip
FULL = {
    "Swinv2": {"image_size": 256, "window_size": 8},
    "Beit": {"use_relative_position_bias": True},  # as microsoft/beit-base-patch16-224
    "Data2VecVision": {"use_relative_position_bias": True},
}


def hf(kind: str, full: bool, head: str = "ForImageClassification") -> nn.Module:
    import transformers as t

    config = getattr(t, f"{kind}Config")(**(FULL.get(kind, {}) if full else SMALL[kind]))
    return getattr(t, f"{kind}{head}")(config)


def contrastive(kind: str, full: bool) -> nn.Module:
    """CLIP, SigLIP, MetaCLIP 2: the classifier reads the vision tower (the text tower is
    built from the config, and unused)."""
    import transformers as t

    small = {} if full else {"vision_config": VIT, "text_config": TEXT}
    return getattr(t, f"{kind}ForImageClassification")(getattr(t, f"{kind}Config")(**small))


def perceiver(preprocessing: str, full: bool) -> nn.Module:
    import transformers as t

    if full:
        config = t.PerceiverConfig(
            image_size=224,
            num_latents=512,
            d_latents=1024,
            num_blocks=8,
            num_self_attends_per_block=6,
            num_self_attention_heads=8,
            num_cross_attention_heads=1,
        )
    else:
        config = t.PerceiverConfig(
            image_size=32,
            num_latents=16,
            d_latents=32,
            d_model=32,
            num_blocks=1,
            num_self_attends_per_block=1,
            num_self_attention_heads=2,
            num_cross_attention_heads=1,
        )
    return getattr(t, f"PerceiverForImageClassification{preprocessing}")(config)  # fmt: skip


def _hf(kind: str, full_size: int = 224, **kw) -> tuple:
    return (lambda full: hf(kind, full, **kw), (3, full_size, full_size), (3, 64, 64))


HF_MORE = {
    "hf-swin": _hf("Swin"),
    "hf-swin-v2": _hf("Swinv2", 256),
    "hf-donut-swin": _hf("DonutSwin"),
    "hf-cvt": _hf("Cvt"),
    "hf-beit": _hf("Beit"),
    "hf-data2vec-vision": _hf("Data2VecVision"),
    "hf-deit": _hf("DeiT"),
    "hf-deit-distilled": _hf("DeiT", head="ForImageClassificationWithTeacher"),
    "hf-vit-msn": _hf("ViTMSN"),
    "hf-dinov2-registers": _hf("Dinov2WithRegisters"),
    "hf-ijepa": _hf("IJepa"),
    "hf-clip": (lambda full: contrastive("CLIP", full), (3, 224, 224), (3, 64, 64)),
    "hf-siglip": (lambda full: contrastive("Siglip", full), (3, 224, 224), (3, 64, 64)),
    "hf-metaclip2": (lambda full: contrastive("MetaClip2", full), (3, 224, 224), (3, 64, 64)),
}

HF_PERCEIVER = {
    f"hf-perceiver-{kind.lower()}": (
        lambda full, kind=kind: perceiver(kind, full),
        (3, 224, 224),
        (3, 32, 32),
    )
    for kind in ("Learned", "Fourier", "ConvProcessing")
}
