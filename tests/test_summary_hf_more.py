"""cnnlab.summary on what Hugging Face's image classifiers of test_summary_zoo_hf.py do,
written small: each case checked against torch's own forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.summary import shapes, summary
from cnnlab.errors import CnnlabError


class PositionIds(nn.Module):
    """CLIP's and BEiT's way: an embedding of fixed position ids (a buffer), and a bias table
    through a Linear, added to the patch tokens; neither reads a pixel."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, 4)
        self.pos = nn.Embedding(16, 8)
        self.table = nn.Linear(2, 8)
        self.register_buffer("ids", torch.arange(16))
        self.register_buffer("coords", torch.zeros(16, 2))

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # (B, 16, 8)
        return tokens + self.pos(self.ids) + self.table(self.coords)


def test_a_layer_of_constants_alone_has_a_field_of_no_pixel():
    model = PositionIds().eval()
    outputs = []
    for name in ("pos", "table"):
        getattr(model, name).register_forward_hook(lambda m, i, out: outputs.append(out))
    with torch.no_grad():  # truth: the same output for two different images
        model(torch.randn(1, 3, 16, 16)), model(torch.randn(1, 3, 16, 16))
    assert torch.equal(outputs[0], outputs[2]) and torch.equal(outputs[1], outputs[3])
    rows = {r.name: (r.receptive_field, r.jump) for r in summary(model, (3, 16, 16)).rows}
    assert rows == {"patch": (4, 4), "pos": (0, 0), "table": (0, 0), "": (4, 4)}


class Mix(nn.Module):
    """A per-token linear map written as an einsum (implicit output: "bij", sorted)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 8))

    def forward(self, x):
        return torch.einsum("bic,jc", x, self.weight)


class Attend(nn.Module):
    """CvT's attention: scores and the weighted sum of the values as einsums."""

    def __init__(self, einsum: bool):
        super().__init__()
        self.einsum = einsum

    def forward(self, x):  # (B, N, C): one head, x as queries, keys and values
        q = k = v = x.unsqueeze(1)  # (B, 1, N, C)
        if not self.einsum:
            return ((q @ k.transpose(-1, -2)).softmax(-1) @ v).squeeze(1)
        scores = torch.einsum("bhlk,bhtk->bhlt", [q, k]).softmax(-1)
        return torch.einsum("...lt,...tv->...lv", scores, v).squeeze(1)


class EinsumNet(nn.Module):
    def __init__(self, einsum: bool = True):
        super().__init__()
        self.patch, self.mix, self.attend = nn.Conv2d(3, 8, 4, 4), Mix(), Attend(einsum)

    def forward(self, x):
        return self.attend(self.mix(self.patch(x).flatten(2).transpose(1, 2)))


def pixels_read(model: nn.Module, layer: str, token: int) -> int:
    """Truth: the width of the input pixels the gradient of `layer`'s output at `token` reaches."""
    out = []
    getattr(model, layer).register_forward_hook(lambda m, i, o: out.append(o))
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    model(x)
    out[0][0, token].sum().backward()
    cols = x.grad.abs().sum((0, 1, 2)).nonzero()
    return int(cols.max() - cols.min() + 1)


def test_an_einsum_moves_fields_where_its_letters_say():
    model = EinsumNet().eval()
    rows = {r.name: r.receptive_field for r in summary(model, (3, 16, 16)).rows}
    assert rows["mix"] == pixels_read(EinsumNet(), "mix", 5) == 4  # per token: its patch
    assert pixels_read(EinsumNet(), "attend", 5) == 16 <= rows["attend"]  # every patch
    twin = summary(EinsumNet(einsum=False), (3, 16, 16))  # the same attention by matmuls
    assert rows["attend"] == next(r for r in twin.rows if r.name == "attend").receptive_field
    assert summary(model, (3, 16, 16)).warnings == []


class LatentQuery(nn.Module):
    """Perceiver's encoder, small: a learned query (weights alone) attends to the tokens of a
    3×3 conv stem; a Linear reads the attention's output."""

    def __init__(self):
        super().__init__()
        self.stem, self.latents = nn.Conv2d(3, 8, 3, padding=1), nn.Parameter(torch.randn(2, 8))
        self.attend, self.head = nn.Identity(), nn.Linear(8, 5)

    def forward(self, x):
        tokens = self.stem(x).flatten(2).transpose(1, 2)  # (B, H·W, 8)
        weights = (self.latents @ tokens.transpose(1, 2)).softmax(-1)  # (B, 2, H·W)
        return self.head(self.attend(weights @ tokens).mean(1))


def test_attention_weights_of_a_learned_query_are_no_head_with_a_small_field():
    """The attention's output, which the head reads, depends on every pixel (truth: autograd),
    so rf-small ("no unit sees the whole image") is not the model's; the softmax over the
    positions keeps them, it is no pooling."""
    assert pixels_read(LatentQuery(), "attend", 0) == 16
    s = summary(LatentQuery(), (3, 16, 16))
    assert s.warnings == [], s.warnings
    assert next(r for r in s.rows if r.name == "attend").receptive_field >= 16


@pytest.mark.parametrize(
    ("mask", "dtype"), [((4, 1, 6, 9), torch.float32), ((6, 9), torch.bool), ((1, 9), None)]
)
def test_attention_with_a_mask_is_made_from_shapes_as_torch_makes_it(mask, dtype):
    """Swin's attention passes its windows' bias and shift mask as attn_mask (a meta kernel
    in Python: 5 ms a call); the output made from the shapes is torch's own."""
    q, k, v = torch.randn(4, 2, 6, 8), torch.randn(4, 2, 9, 8), torch.randn(4, 2, 9, 5)
    m = torch.randn(mask) if dtype is None else torch.randn(mask).gt(0).to(dtype)
    real = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    meta = [t.to("meta") for t in (q, k, v, m)]
    made = shapes.made(F.scaled_dot_product_attention, tuple(meta[:3]), {"attn_mask": meta[3]})
    assert made is not None and (made.shape, made.dtype) == (real.shape, real.dtype)


def test_attention_with_a_mask_torch_refuses_runs_its_kernel():
    q, k, v = (torch.randn(1, 2, n, 8) for n in (6, 9, 9))
    for mask in (torch.randn(6, 7), torch.ones(6, 9, dtype=torch.int64)):  # shape, dtype
        with pytest.raises(RuntimeError):  # torch refuses it on real data
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        meta = tuple(t.to("meta") for t in (q, k, v))
        assert (
            shapes.made(F.scaled_dot_product_attention, meta, {"attn_mask": mask.to("meta")})
            is None
        )


class TokenIds(nn.Module):
    """ImageGPT's way in: its input is colour-cluster ids, read by an embedding."""

    def __init__(self):
        super().__init__()
        self.wte, self.head = nn.Embedding(16, 4), nn.Linear(4, 2)

    def forward(self, ids):
        return self.head(self.wte(ids.flatten(1)).mean(1))


def test_a_model_of_token_ids_is_refused_without_an_input_size_to_try():
    for side in (4, 8):  # truth: torch refuses an image's float values at every size
        with pytest.raises(RuntimeError, match="indices"):
            TokenIds()(torch.rand(1, 3, side, side))
    with pytest.raises(CnnlabError, match="wte.*takes integer token ids, not an image") as err:
        summary(TokenIds(), (3, 4, 4))
    assert "check the input size" not in str(err.value)
