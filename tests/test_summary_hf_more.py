"""cnnlab.summary on what Hugging Face's image classifiers of test_summary_zoo_hf.py do,
written small: each case checked against torch's own forward."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.design.summary import summary


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
