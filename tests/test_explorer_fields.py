"""The receptive field the explorer draws for a clicked unit (`probe.receptive_fields`), on
models whose convs read views of another layer's output. Truth: the input pixels whose
gradient for the unit is non-zero (all weights positive: nothing cancels)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.explorer.probe import receptive_fields, unit_box

pytestmark = pytest.mark.usefixtures("one_thread")


class Halves(nn.Module):
    """A stem, then each half of its channels (torch.chunk) through its own conv: the wide
    one first, so the narrow one's input is made before the wide one's output."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.wide = nn.Conv2d(2, 2, 7, padding=3)
        self.narrow = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        a, b = torch.chunk(self.stem(x), 2, dim=1)
        return torch.cat([self.wide(a), self.narrow(b)], 1)


def seen_rows(model: nn.Module, layer: str, i: int, j: int) -> list[int]:
    """Input rows whose gradient for unit (0, i, j) of `layer`'s output is non-zero."""
    x = torch.ones(1, 1, 31, 31, requires_grad=True)
    out = {}
    model.get_submodule(layer).register_forward_hook(lambda m, a, y: out.update(y=y))
    model(x)
    out["y"][0, 0, i, j].backward()
    return torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten().tolist()


@pytest.mark.parametrize("layer", ["stem", "wide", "narrow"])
def test_a_conv_reading_half_a_chunk_has_its_own_field(layer):
    """narrow's field was wide's plus its own kernel (11 px, not 5): the chunk it reads was
    given the widest field made so far, wide's output's."""
    torch.manual_seed(0)
    model = Halves()
    for p in model.parameters():
        p.data.uniform_(0.1, 1.0)
    fields = receptive_fields(model, torch.ones(1, 1, 31, 31))
    box = unit_box(fields[layer], 15, 15)
    rows = list(range(int(box["top"]), int(box["top"]) + box["height"]))
    assert rows == seen_rows(model, layer, 15, 15)


class Functional(nn.Module):
    """Pools and a fixed blur slid by the forward itself, as the PyTorch tutorials write
    them: `F.avg_pool2d(F.relu(self.conv1(x)), 2)`; no module hook sees those windows."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.conv3 = nn.Conv2d(2, 2, 3)
        self.register_buffer("blur", torch.ones(2, 1, 3, 3) / 9)

    def forward(self, x):
        x = torch.nn.functional.avg_pool2d(torch.relu(self.conv1(x)), 2)  # stride = kernel
        x = torch.nn.functional.conv2d(self.conv2(x), self.blur, padding="same", groups=2)
        x = torch.nn.functional.avg_pool2d(x, kernel_size=3, stride=2, padding=1)
        return self.conv3(x)


@pytest.mark.parametrize("layer", ["conv2", "conv3"])
def test_a_conv_after_windows_the_forward_slides_itself_has_their_field(layer):
    """conv2 and conv3 were drawn 1×1 (the image's own pixels: no field was known for their
    inputs) where conv2 sees 8×8 of the image and conv3, behind the blur and a padded pool,
    24×24."""
    torch.manual_seed(0)
    model = Functional()
    for p in model.parameters():
        p.data.uniform_(0.1, 1.0)
    i = {"conv2": 7, "conv3": 2}[layer]
    fields = receptive_fields(model, torch.ones(1, 1, 31, 31))
    box = unit_box(fields[layer], i, i)
    rows = [r for r in range(int(box["top"]), int(box["top"]) + box["height"]) if 0 <= r < 31]
    assert rows == seen_rows(model, layer, i, i)


class Shortcut(nn.Module):
    """A residual block's two readers of one functional ReLU's output: a wide conv, then the
    1×1 shortcut, which reads the ReLU's output after the wide conv's is made."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.wide = nn.Conv2d(2, 2, 7, padding=3)
        self.short = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return torch.relu(self.wide(x) + self.short(x))


def test_a_shortcut_conv_reading_a_functional_relu_has_the_relus_field():
    """The shortcut was drawn 9 px (the wide conv's field: the widest of its size made
    before it read) where it sees the stem's 3."""
    torch.manual_seed(0)
    model = Shortcut()
    for p in model.parameters():
        p.data.uniform_(0.1, 1.0)
    fields = receptive_fields(model, torch.ones(1, 1, 31, 31))
    box = unit_box(fields["short"], 15, 15)
    rows = list(range(int(box["top"]), int(box["top"]) + box["height"]))
    assert rows == seen_rows(model, "short", 15, 15)
