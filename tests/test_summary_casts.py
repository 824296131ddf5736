"""A cast between layers (`.double()`, `.type(...)`, `.half()`, `.type_as(...)`) keeps every
value at its position, so the receptive field follows it: three 3×3 convs give 3, 5, 7
(geometry.rf_step, §3.2). The Tensor methods were looked for on torch.nn.functional, which
has none of them: the rows after a cast had no field and an 'unfollowed' lint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab import geometry


def _fields(k: int) -> list[int]:
    rf, out = geometry.INPUT_RF, []
    for _ in range(k):
        rf = geometry.rf_step(rf, 3)
        out.append(rf.size)
    return out


CASTS = {
    "double": lambda x: x.double(),
    "type": lambda x: x.type(torch.float64),
    "half": lambda x: x.half(),
    "bfloat16": lambda x: x.bfloat16(),
    "float": lambda x: x.float(),
    "type_as": lambda x: x.type_as(torch.zeros((), dtype=torch.float64)),
    "requires_grad_": lambda x: x.requires_grad_(False),
}


class Cast(nn.Module):
    def __init__(self, cast) -> None:
        super().__init__()
        self.cast = cast
        self.a, self.b, self.c = (nn.Conv2d(2, 2, 3) for _ in range(3))

    def forward(self, x):
        x = torch.relu(self.a(x))
        dtype = self.cast(x).dtype
        return self.c(torch.relu(self.b(self.cast(x).to(dtype)).to(dtype)))


@pytest.mark.parametrize("name", list(CASTS))
def test_the_field_follows_a_cast(name):
    model = Cast(CASTS[name])
    dtype = model.cast(torch.zeros(1)).dtype
    model.b.to(dtype)
    model.c.to(dtype)
    found = cnnlab.summary(model, (2, 16, 16))
    rows = {r.name: r.receptive_field for r in found.rows}
    assert [rows["a"], rows["b"], rows["c"]] == _fields(3)
    assert not [w for w in found.warnings if w.code == "unfollowed"]
