"""A token mixer written with nn.MultiheadAttention(batch_first=True) after a conv stem:
`probe` of its attention refused it, with need_weights' default ('returns a tuple ...': its
(attn_output, attn_weights) are both 3-D), and with need_weights=False as 'gives 16 rows for
40 images': F.multi_head_attention_forward is one op to the layout tracing, its (L, B, C)
output was taken for channels-first and the transpose back to (B, L, C) put them on dim 0.
Truth: the same attention written out in torch ops (F.linear, F.scaled_dot_product_attention),
whose output's layout no special case tells."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import explain
from cnnlab.explain.probe import extract_features

pytestmark = pytest.mark.usefixtures("one_thread")


class WrittenOut(nn.Module):
    """nn.MultiheadAttention's self-attention of (B, L, C) tokens, op by op."""

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        self.mha = mha

    def forward(self, t):
        b, n, c, h = *t.shape, self.mha.num_heads
        q, k, v = F.linear(t, self.mha.in_proj_weight, self.mha.in_proj_bias).chunk(3, -1)
        q, k, v = (z.reshape(b, n, h, c // h).transpose(1, 2) for z in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        return F.linear(o, self.mha.out_proj.weight, self.mha.out_proj.bias)


class Mixer(nn.Module):
    def __init__(self, need_weights: bool = True, written: bool = False) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 2, stride=2)
        mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.attn = WrittenOut(mha) if written else mha
        self.need_weights, self.written = need_weights, written
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        t = self.stem(x).flatten(2).transpose(1, 2)  # (B, 16, 8) tokens
        if self.written:
            a = self.attn(t)
        else:
            a, _ = self.attn(t, t, t, need_weights=self.need_weights)
        return self.head((t + a).mean(1))


@pytest.mark.parametrize("need_weights", [True, False])
def test_an_attentions_output_is_probed_as_its_tokens(need_weights):
    torch.manual_seed(0)
    model = Mixer(need_weights).eval()
    truth = Mixer(written=True).eval()
    state = model.state_dict()
    truth.load_state_dict({k.replace("attn.", "attn.mha."): v for k, v in state.items()})
    torch.manual_seed(1)
    x, y = torch.randn(40, 1, 8, 8), torch.randint(0, 3, (40,))
    with torch.no_grad():
        assert torch.allclose(model(x), truth(x), atol=1e-5)  # the same network
    got, _ = extract_features(model, (x, y), ["attn"])
    want, _ = extract_features(truth, (x, y), ["attn"])
    assert got["attn"].shape == want["attn"].shape
    assert torch.allclose(got["attn"], want["attn"], atol=1e-4)
    accuracy = explain.linear_probe(model, (x[:32], y[:32]), (x[32:], y[32:]), ["attn"], epochs=3)
    assert set(accuracy) == {"input", "attn"}
