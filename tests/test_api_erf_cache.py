"""The effective receptive field of Hugging Face's LeViT after one ordinary forward (its
attention_bias_cache then holds tensors with autograd history, which deepcopy refuses: summary
copies them detached). The field is measured as autograd's gradient, inside the theoretical
one; it raised torch's 'Only Tensors created explicitly by the user (graph leaves) support the
deepcopy protocol'."""

from __future__ import annotations

import pytest
import torch

from cnnlab import explain
from test_summary_zoo import make

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_erf_of_levit_after_a_forward_is_autograds_gradient():
    model, size = make("hf-levit")
    model(torch.randn(1, *size))  # as a notebook does: eval mode, gradients on
    layer = "levit.patch_embeddings.embedding_layer_2"
    erf = explain.effective_receptive_field(model, layer, size, n=2)
    x = torch.randn((2, *size), generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    acts = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: acts.update(o=o))
    model(x)
    handle.remove()
    h, w = acts["o"].shape[2:]
    acts["o"][:, :, h // 2, w // 2].sum().backward()
    torch.testing.assert_close(erf.gradient, x.grad.abs().mean((0, 1)))
    assert erf.theoretical >= erf.measured > 0
