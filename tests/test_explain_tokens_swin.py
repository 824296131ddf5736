"""Grad-CAM on hierarchical vision transformers (Hugging Face Swin, Swin V2, Donut's Swin, built
small in test_summary_zoo_hf: a 16×16 patch grid, merged 2×2 per stage down to 2×2). After
patch merging no map of the image has the tokens' N positions; they lie in row-major order on
the patch grid downsampled 2^k per side, with no class token. Truths: Hugging Face's own
`reshaped_hidden_states` (the stage's tokens as the (B, C, h, w) map it lays them on), and
Captum's LayerGradCam at the test's PatchMap (tests/test_explain_tokens.py)."""

from __future__ import annotations

import pytest
import torch

from cnnlab import explain
from cnnlab.errors import ExplainError
from cnnlab.inspect import default_layer
from cnnlab.inspect.tokens import Grid, as_map, token_grid, token_layers
from test_explain_tokens import _model, captum, captum_patch_map

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

# zoo name -> Grad-CAM's default: the last block's input to its windowed attention, the
# tokens (B, h·w, C) before the window partition; Swin V2 normalizes after attention, so its
# attention reads the block's input, the last patch merging's output
SWINS = {
    "hf-swin": "net.swin.encoder.layers.3.blocks.0.layernorm_before",
    "hf-swin-v2": "net.swinv2.encoder.layers.2.downsample",
    "hf-donut-swin": "net.donut.encoder.layers.3.blocks.0.layernorm_before",
}


@pytest.mark.parametrize("name", list(SWINS))
def test_the_default_is_the_last_attentions_input_and_equals_captums(name):
    """In float64: in float32 the two sums over the 128 channels differ in order, and where
    they nearly cancel the scaled maps differ by up to 2.1e-6 (float64: 8e-16)."""
    model, x = _model(name)
    model, x = model.double(), x.double()
    layer = SWINS[name]
    assert default_layer(model, x) == layer
    assert token_grid(model, x, layer) == Grid(prefix=0, h=2, w=2, channels=128)
    ref = captum_patch_map(model, x, layer, 2, captum.LayerGradCam)
    got = explain.gradcam(model, x)  # the default
    assert bool((ref.amax((1, 2)) > 0).all())  # no blank map compared
    assert (got - ref).abs().max().item() <= 1e-6


@pytest.mark.parametrize("name", ["hf-swin", "hf-swin-v2"])
def test_merged_tokens_lie_row_major_on_the_grid_hugging_face_reshapes_them_to(name):
    """Each stage's output tokens, read on their grid, are Hugging Face's own map of them."""
    model, x = _model(name)
    body = model.net.swin if name == "hf-swin" else model.net.swinv2
    stage = "layers.{}" if name == "hf-swin" else "layers.{}.downsample"
    with torch.no_grad():
        maps = body(x, output_hidden_states=True).reshaped_hidden_states  # embeddings, stages
    seen, handles = {}, []
    for k in range(3):
        module = body.encoder.get_submodule(stage.format(k))
        handles.append(module.register_forward_hook(lambda m, i, o, k=k: seen.update({k: o})))
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    prefix = "net.swin.encoder." if name == "hf-swin" else "net.swinv2.encoder."
    for k in range(3):
        tokens = seen[k][0] if isinstance(seen[k], tuple) else seen[k]
        grid = token_grid(model, x, prefix + stage.format(k))
        assert (grid.h, grid.w) == (16 >> (k + 1), 16 >> (k + 1))
        torch.testing.assert_close(as_map(tokens, grid), maps[k + 1], rtol=0, atol=0)


def test_every_blocks_token_layer_has_its_grid():
    """One layer per block (its attention's input), on the grid of its stage."""
    model, x = _model("hf-swin")
    got = {label: (g.h, g.w, g.channels) for label, g in token_layers(model, x).items()}
    blocks = ["0.blocks.0", "0.blocks.1", "1.blocks.0", "2.blocks.0", "3.blocks.0"]
    sides = [(16, 16, 16), (16, 16, 16), (8, 8, 32), (4, 4, 64), (2, 2, 128)]
    want = {
        f"net.swin.encoder.layers.{b}.layernorm_before": s
        for b, s in zip(blocks, sides, strict=True)
    }
    assert got == want


def test_latents_computed_from_every_position_lie_on_no_grid():
    """Perceiver IO's 16 latents after its cross-attention: 16 is a 32×32 map's grid merged
    8×8, but each latent reads the whole image, no 8×8 block of it (`_merged_onto`): refused,
    and Grad-CAM's default stays its map."""
    model, x = _model("hf-perceiver-convprocessing")
    with pytest.raises(ExplainError, match="patch grid is unknown"):
        token_grid(model, x, "net.perceiver.encoder.cross_attention")
    assert default_layer(model, x) == "net.perceiver.input_preprocessor.convnet"


def test_levits_subsampled_tokens_lie_on_their_grid():
    """LeViT's first stage ends by subsampling its 4×4 tokens to 2×2 (queries at every other
    row and column): Grad-CAM's default is that stage's output, equal to Captum's."""
    fresh, x = _model("hf-levit")  # Captum's copy first: a LeViT that ran caches its biases
    ref = captum_patch_map(fresh, x, "net.levit.encoder.stages.0", 2, captum.LayerGradCam)
    model, x = _model("hf-levit")
    assert default_layer(model, x) == "net.levit.encoder.stages.0"
    assert (explain.gradcam(model, x) - ref).abs().max().item() <= 1e-6
