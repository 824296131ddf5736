"""The explorer reads a window's kernel, stride, padding and dilation as torch reads them: an
int[2] given as a one-element list ([2]: both axes) and a pool's stride [] (its kernel), in a
module's attributes or a functional call's arguments. Both readers took them as they were,
and a field's second axis or a conv's padding pair did not exist: IndexError or ValueError.
Truth: the input pixels whose gradient for the unit is non-zero (all weights positive,
average pools: nothing cancels), and torch's conv with the pairs spelled out."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.explorer.probe import Network, dot_product, receptive_fields, unit_box

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 31


class FunctionalPool(nn.Module):
    """An average pool the forward slides itself, its int[2]s as one-element lists."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 2, 3, padding=1)
        self.d = nn.Conv2d(2, 2, 3)

    def forward(self, x):
        return self.d(F.avg_pool2d(self.c(x), [3], [2], [1]))


def models() -> dict[str, tuple[nn.Module, str, int]]:
    """name: (model, layer, unit (i = j) whose field lies inside the image)."""
    return {
        "pool stride []": (
            nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, stride=[]), nn.Conv2d(2, 2, 3)),
            "2",
            5,
        ),
        "functional [k], [s], [p]": (FunctionalPool(), "d", 6),
        "conv [s], [p], [d]": (
            nn.Sequential(
                nn.Conv2d(1, 2, 3, stride=[2], padding=[1], dilation=[2]), nn.Conv2d(2, 2, 3)
            ),
            "1",
            6,
        ),
    }


def seen(model: nn.Module, layer: str, i: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(first, last) input row and column whose gradient for unit (0, i, i) of `layer` is
    non-zero (a dilated kernel leaves holes between them)."""
    x = torch.ones(1, 1, SIZE, SIZE, requires_grad=True)
    out = {}
    model.get_submodule(layer).register_forward_hook(lambda m, a, y: out.update(y=y))
    model(x)
    out["y"][0, 0, i, i].backward()
    g = x.grad[0, 0].abs()
    rows, cols = torch.nonzero(g.sum(1)).flatten(), torch.nonzero(g.sum(0)).flatten()
    return (rows.min().item(), rows.max().item()), (cols.min().item(), cols.max().item())


@pytest.mark.parametrize("name", list(models()))
def test_the_field_of_a_window_given_torchs_short_forms_is_the_one_its_gradient_reaches(name):
    model, layer, i = models()[name]
    torch.manual_seed(0)
    for p in model.parameters():
        p.data.uniform_(0.1, 1.0)
    box = unit_box(receptive_fields(model, torch.ones(1, 1, SIZE, SIZE))[layer], i, i)
    rows = (int(box["top"]), int(box["top"]) + box["height"] - 1)
    cols = (int(box["left"]), int(box["left"]) + box["width"] - 1)
    assert (rows, cols) == seen(model, layer, i)


def test_a_conv_given_one_element_lists_has_its_dot_product():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 2, 3, stride=[2], padding=[1], dilation=[2])
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(2 * 15 * 15, 3))
    x = torch.randn(1, 1, SIZE, SIZE)
    net = Network.of(model, (1, SIZE, SIZE), x)
    truth = F.conv2d(x, conv.weight, conv.bias, stride=(2, 2), padding=(1, 1), dilation=(2, 2))
    for f, i, j in [(1, 0, 0), (0, 3, 4), (1, 14, 14)]:
        numbers = dot_product(net, net.probe(x), "0", f, i, j)
        assert numbers["padding"] == [1, 1, 1, 1]
        assert numbers["stride"] == numbers["dilation"] == [2, 2]
        assert numbers["output"] == pytest.approx(truth[0, f, i, j].item(), abs=1e-5)
