"""Layer and group norm outputs the summary's trace makes (`shapes.norm_out`, through
`shapes.made` and `Shortcuts._norm`) against torch's real CPU outputs: the same shape and
strides, so that a later `.view` runs or fails as it does in torch; and modules with a
forward of their own instance (not their type's), which the trace runs."""

from __future__ import annotations

import itertools
from types import MethodType

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.design.summary.shapes import made
from cnnlab.errors import CnnlabError


def _layouts() -> list[tuple[str, torch.Tensor]]:
    """Maps of every axis order, dense or cut along the last axis, and channels-last ones."""
    out = []
    for shape in [(2, 8, 5, 6), (2, 8, 1, 6), (2, 8, 6), (2, 8, 3, 4, 5)]:
        base = torch.randn(*shape)
        for perm in itertools.permutations(range(len(shape))):
            t = base.permute(*perm)
            out.append((f"{shape}{perm}", t))
            if t.shape[-1] > 1:  # no empty map
                out.append((f"{shape}{perm}[..., :-1]", t[..., :-1]))
    cl = torch.randn(2, 8, 5, 6).contiguous(memory_format=torch.channels_last)
    cl3 = torch.randn(2, 8, 3, 4, 5).contiguous(memory_format=torch.channels_last_3d)
    return [*out, ("channels_last", cl), ("channels_last[..., :-1]", cl[..., :-1]), ("cl3d", cl3)]


LAYOUTS = _layouts()


def _same_layout(out: torch.Tensor | None, want: torch.Tensor) -> bool:
    """Same shape and strides (but along axes of one value, which no view reads)."""
    if out is None or out.shape != want.shape:
        return False
    pairs = zip(out.stride(), want.stride(), want.shape, strict=True)
    return all(a == b for a, b, n in pairs if n > 1)


@pytest.mark.parametrize(("name", "x"), LAYOUTS, ids=[n for n, _ in LAYOUTS])
def test_a_layer_norm_is_made_with_torchs_shape_and_strides(name, x):
    """Torch's CPU layer norm is contiguous whatever x's layout (a permuted x's too)."""
    want = F.layer_norm(x, x.shape[-1:])
    out = made(F.layer_norm, (x.to("meta"), tuple(x.shape[-1:])), {})
    assert _same_layout(out, want)


@pytest.mark.parametrize(("name", "x"), LAYOUTS, ids=[n for n, _ in LAYOUTS])
def test_a_group_norm_is_made_with_torchs_shape_and_strides_or_left_to_torch(name, x):
    """Torch's CPU group norm keeps a channels-last x's layout, else is contiguous (its
    meta kernel is always contiguous); made as the CPU's, or left to torch (None) where the
    layout is not sure (channels-last ordered strides that are not dense)."""
    groups = 4 if x.shape[1] % 4 == 0 else 1
    want = F.group_norm(x, groups)
    out = made(F.group_norm, (x.to("meta"), groups), {})
    if out is None:
        assert not x.is_contiguous() and "[..., :-1]" in name
        return
    assert _same_layout(out, want)


def test_group_norm_of_dense_layouts_is_always_made():
    """The shortcut serves contiguous, channels-last and permuted dense inputs."""
    x = torch.empty(2, 8, 5, 6, device="meta")
    for t in (x, x.contiguous(memory_format=torch.channels_last), x.transpose(2, 3)):
        assert made(F.group_norm, (t, 4), {}) is not None


class _Permuted(nn.Module):
    """A norm over channels on an NHWC view, back to NCHW, then flattened by `.view`."""

    def __init__(self, norm: nn.Module | None, how: str) -> None:
        super().__init__()
        self.conv, self.norm, self.how = nn.Conv2d(3, 8, 1), norm, how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.how == "ln":
            y = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        elif self.how == "f.ln":
            y = F.layer_norm(x.permute(0, 2, 3, 1), (8,)).permute(0, 3, 1, 2)
        elif self.how == "gn":
            y = self.norm(x.transpose(2, 3)).transpose(2, 3)
        else:  # F.group_norm
            y = F.group_norm(x.transpose(2, 3), 2).transpose(2, 3)
        return y.view(x.shape[0], -1)


@pytest.mark.parametrize(
    ("norm", "how"),
    [(lambda: nn.LayerNorm(8), "ln"), (lambda: None, "f.ln")]
    + [(lambda: nn.GroupNorm(2, 8), "gn"), (lambda: None, "f.gn")],
)
def test_a_view_of_a_permuted_norms_output_is_refused_as_torch_refuses_it(norm, how):
    """torch's norm output is contiguous, its permutation back is not: `.view` raises."""
    model = _Permuted(norm(), how)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        model(torch.randn(1, 3, 4, 5))
    with pytest.raises(CnnlabError, match="view size is not compatible"):
        summary(model, (3, 4, 5))


def _own_forward(layer: nn.Module) -> nn.Module:
    """The layer's type's forward, summed over the last axis: another output shape."""
    layer.forward = MethodType(lambda s, x: type(s).forward(s, x).sum(-1, keepdim=True), layer)
    return layer


@pytest.mark.parametrize(
    ("model", "size"),
    [
        (lambda: nn.Sequential(nn.Flatten(2), _own_forward(nn.Linear(20, 6))), (4, 4, 5)),
        (lambda: nn.Sequential(nn.Conv2d(3, 6, 1), _own_forward(nn.LayerNorm(5))), (3, 4, 5)),
        (lambda: nn.Sequential(nn.Conv2d(3, 6, 1), _own_forward(nn.GroupNorm(2, 6))), (3, 4, 5)),
        (lambda: nn.Sequential(_own_forward(nn.Conv2d(3, 6, 3)), nn.ReLU()), (3, 8, 8)),
        (lambda: nn.Sequential(nn.Conv2d(3, 6, 1), _own_forward(nn.ReLU())), (3, 4, 5)),
    ],
)
def test_a_forward_set_on_the_instance_runs_in_the_trace(model, size):
    """A module whose instance has its own forward: the rows hold the shapes torch's real
    forward gives (the type's shortcut would give the type's)."""
    m = model()
    with torch.no_grad():
        want = [tuple(m[0](torch.randn(1, *size)).shape[1:])]
        want.append(tuple(m(torch.randn(1, *size)).shape[1:]))
    rows = summary(m, size).rows
    assert [r.output_shape for r in rows] == want
    assert want[-1][-1] == 1 or want[0][-1] == 1  # the own forward's sum is what is seen
