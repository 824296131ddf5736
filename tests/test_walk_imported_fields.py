"""The receptive field the explorer draws for a clicked unit behind a squeeze-excitation gate
(x · g, g computed from a global pool of x): every pixel of the image reaches g, so it reaches
every unit after the gate. The explorer drew the conv's window on the map before the gate
(11 px of a 32-px image for a 3×3/2 conv after it, and 1 px for the gate's own convs).
Truth: the input pixels whose gradient for the unit is non-zero (a real forward and backward,
float64, all weights positive: no path is zeroed), against the clipped box of `unit_box`."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from cnnlab.explorer.probe import receptive_fields, unit_box

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32


class MeanGate(nn.Module):
    """An SE gate as timm writes it: a mean over H and W kept 4-D, two 1×1 convs."""

    def __init__(self, c: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class LinearGate(nn.Module):
    """A mean to (B, C), Linear layers, and the gate indexed back to (B, C, 1, 1)."""

    def __init__(self, c: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, c), nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(x.mean((2, 3)))[:, :, None, None]


def monai_gate(c: int) -> nn.Module:
    """MONAI's own SE block: AdaptiveAvgPool, Linear layers, .view to (B, C, 1, 1)."""
    from monai.networks.blocks import ChannelSELayer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ChannelSELayer(2, c, r=2)


GATES = {"monai": monai_gate, "mean": MeanGate, "linear": LinearGate}


def net(gate: str) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        GATES[gate](4),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 2, 3, padding=1),
    )
    for p in model.parameters():
        p.data.uniform_(0.1, 1.0)
    return model.double().eval()


def seen(model: nn.Module, layer: str, i: int, j: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the input pixels with a non-zero gradient for unit
    (0, i, j) of `layer`'s output (positive input: the ReLUs pass everything)."""
    x = torch.rand(1, 1, SIZE, SIZE, dtype=torch.float64).add(0.1).requires_grad_()
    out = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, a, y: out.update(y=y))
    model(x)
    handle.remove()
    (grad,) = torch.autograd.grad(out["y"][0, 0, i, j], x)
    rows = grad[0, 0].abs().sum(1).nonzero().flatten()
    cols = grad[0, 0].abs().sum(0).nonzero().flatten()
    return int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])


def clipped(box: dict) -> tuple[int, int, int, int]:
    """unit_box's box as the input pixels it covers: (top, left, bottom, right)."""
    top, left = max(0, int(box["top"])), max(0, int(box["left"]))
    bottom = min(SIZE, int(box["top"]) + box["height"]) - 1
    right = min(SIZE, int(box["left"]) + box["width"]) - 1
    return top, left, bottom, right


@pytest.mark.parametrize("gate", GATES)
def test_a_unit_behind_an_se_gate_sees_the_whole_image(gate):
    model = net(gate)
    fields = receptive_fields(model, torch.zeros(1, 1, SIZE, SIZE, dtype=torch.float64))
    for layer, units in {"0": [(0, 0), (8, 8), (15, 15)], "3": [(0, 0), (4, 4), (7, 7)],
                         "5": [(0, 0), (7, 7)]}.items():  # fmt: skip
        for i, j in units:
            assert clipped(unit_box(fields[layer], i, j)) == seen(model, layer, i, j), (layer, i, j)
    assert seen(model, "3", 0, 0) == (0, 0, SIZE - 1, SIZE - 1)  # the gate reaches it all


def test_the_gates_own_convs_see_the_whole_image():
    """The 1×1 convs on the pooled (B, C, 1, 1) map: one unit, which every pixel reaches."""
    model = net("mean")
    fields = receptive_fields(model, torch.zeros(1, 1, SIZE, SIZE, dtype=torch.float64))
    for layer in ("2.fc1", "2.fc2"):
        assert clipped(unit_box(fields[layer], 0, 0)) == seen(model, layer, 0, 0)


SE_NET = """
    import torch
    from torch import nn

    class Gate(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1)

        def forward(self, x):
            return x * torch.sigmoid(self.fc(self.pool(x)))

    def make_net():
        return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), Gate(4),
                             nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
"""

# the middle of each edge of the 280×280 input view, where a whole-image box is drawn
EDGES = [(1, 140), (278, 140), (140, 1), (140, 278)]


def test_the_page_outlines_a_whole_image_field_on_the_image(tmp_path):
    """The unit's box behind the gate is past every edge of the image: the page drew it
    unclipped, off the canvas, so no outline showed; it is outlined on the image's border."""
    from explorer_runs import explorer_page, wait_until
    from test_serve_page import imported_run

    with explorer_page(imported_run(tmp_path, SE_NET, [1, SIZE, SIZE])) as (page, problems):
        page.click("#draw-predict")
        wait_until(page, "state.maps !== null")
        page.select_option("#feature-layer", "3")
        wait_until(page, "state.maps !== null && state.maps.layer === '3'")
        page.click("#channel-view", position={"x": 5, "y": 5})
        wait_until(page, "state.trace !== null && state.trace.layer === '3'")
        field = page.evaluate("state.trace.field")
        pixel = "([x, y]) => [...document.getElementById('view').getContext('2d')"
        pixel += ".getImageData(x, y, 1, 1).data.slice(0, 3)]"
        colours = [page.evaluate(pixel, xy) for xy in EDGES]
    assert field["top"] <= 0 and field["top"] + field["height"] >= SIZE, field
    assert all(r > 200 and g < 120 and b < 120 for r, g, b in colours), colours
    assert not problems, problems
