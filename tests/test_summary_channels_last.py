"""The memory layout of the outputs cnnlab.summary makes on meta, against torch's on real
data: an upsampled map keeps a channels-last input's layout, instance norm's output is left to
torch, a conv's output layout follows its input and weights, and a `.view` after a
channels-last conv, pool or upsample fails in summary where it fails in torch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.design.summary.shapes import layout, made
from cnnlab.errors import CnnlabError
from test_summary import leaf_rows, real_leaf_shapes


def _layouts(x):
    """x (1, 4, 5, 7) contiguous, channels-last, permuted from (1, 5, 7, 4) (PVT's position
    embedding), and sliced (neither)."""
    return {
        "contiguous": x,
        "channels-last": x.contiguous(memory_format=torch.channels_last),
        "permuted": x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
        "sliced": torch.cat([x, x], 3)[..., ::2],
    }


@pytest.mark.parametrize("layout", ["contiguous", "channels-last", "permuted", "sliced"])
def test_an_upsampled_map_is_made_in_the_layout_torch_gives_it(layout):
    """F.interpolate keeps a channels-last input's layout: a made output of another layout
    would let a later `.view` pass that torch refuses. Truth: torch's strides on real data;
    a layout neither contiguous nor channels-last is left to torch."""
    meta = _layouts(torch.empty(1, 4, 5, 7, device="meta"))[layout]
    out = made(F.interpolate, (meta,), {"scale_factor": 2, "mode": "bilinear"})
    real = F.interpolate(_layouts(torch.randn(1, 4, 5, 7))[layout], scale_factor=2, mode="bilinear")
    if layout == "sliced":
        assert out is None
    else:
        assert out.shape == real.shape and out.stride() == real.stride()


@pytest.mark.parametrize("layout", ["channels_last", "sliced", "permuted"])
def test_instance_norm_is_made_contiguous_as_torchs_whatever_the_layout(layout):
    """Torch's F.instance_norm output is contiguous whatever its input's layout (truth:
    torch on real data); x's own layout (`new_meta`) would keep a channels-last one."""
    real = torch.randn(1, 4, 5, 14)
    if layout == "channels_last":
        real = real.contiguous(memory_format=torch.channels_last)
    elif layout == "sliced":
        real = real[..., ::2]
    else:
        real = real.permute(0, 1, 3, 2)
    x = torch.empty_strided(real.shape, real.stride(), device="meta")
    out, want = made(F.instance_norm, (x,), {}), F.instance_norm(real)
    assert (out.shape, out.stride()) == (want.shape, want.stride())


def test_a_channels_last_upsample_then_view_is_torchs_error():
    """Channels-last → F.interpolate → .view(B, -1) raises in torch, so summary must name it
    rather than give a table."""

    class Up(nn.Module):
        def forward(self, x):
            y = F.interpolate(x.contiguous(memory_format=torch.channels_last), scale_factor=2)
            return y.view(y.shape[0], -1)

    with pytest.raises(RuntimeError, match="view"):
        Up()(torch.zeros(1, 3, 4, 4))
    with pytest.raises(CnnlabError, match="view"):
        summary(Up(), (3, 4, 4))


class ViewAfter(nn.Module):
    """A conv or a pool, then `.view(B, -1)`: torch refuses it on a channels-last output."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 3 * 3 if kind == "pool" else 4 * 6 * 6, 2)

    def forward(self, x):
        y = self.conv(x)
        if self.kind == "pool":
            y = self.pool(y.contiguous(memory_format=torch.channels_last).relu())
        elif self.kind == "adaptive":
            y = F.adaptive_avg_pool2d(y.contiguous(memory_format=torch.channels_last), 6)
        return self.fc(y.view(y.shape[0], -1))


@pytest.mark.parametrize(
    ("kind", "weights_last"),
    [("conv", False), ("conv", True), ("pool", False), ("adaptive", False)],
)
def test_outputs_are_made_in_torchs_layout_so_a_view_fails_where_torchs_does(kind, weights_last):
    """A conv whose weights are channels-last (model.to(memory_format=torch.channels_last))
    gives a channels-last output, and a pool of a channels-last map keeps it; a `.view` of it
    fails in torch. Summary made contiguous outputs and gave a table; now it names the layer
    with torch's words, and a model torch runs still gets its table. Truth: torch's forward."""
    model = ViewAfter(kind)
    if weights_last:
        model = model.to(memory_format=torch.channels_last)
    try:
        model(torch.zeros(1, 3, 8, 8))
    except RuntimeError as err:
        assert "view" in str(err)
        with pytest.raises(CnnlabError, match="view"):
            summary(model, (3, 8, 8))
        assert kind != "conv" or weights_last  # a plain conv's output views
    else:
        assert kind == "conv" and not weights_last
        assert leaf_rows(summary(model, (3, 8, 8)), model) == real_leaf_shapes(model, (3, 8, 8))


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("x_last", [False, True])
@pytest.mark.parametrize("w_last", [False, True])
@pytest.mark.parametrize("c_in", [1, 4])
def test_a_conv_output_layout_is_torchs(k, x_last, w_last, c_in):
    """`shapes.layout` against torch's own conv output strides on the CPU."""
    x, w = torch.randn(1, c_in, 6, 6), torch.randn(5, c_in, k, k)
    x = x.contiguous(memory_format=torch.channels_last) if x_last else x
    w = w.contiguous(memory_format=torch.channels_last) if w_last else w
    real = F.conv2d(x, w)
    made_out = torch.empty(real.shape, memory_format=layout(x, w))
    assert made_out.stride() == real.stride()
