"""A sequence-first GRU of T = 2 steps whose block squeezes its output: for one image its
(2, 1, H) lost the batch axis, so the images' axis was found from a forward of 2 images
alone, dim 0 where its size was 2, and the 2 time steps were read as 2 images (the probe
refused the layer: 'gives 2 rows for 24 images'). Now forwards of 2 and 3 images are
compared, neither of whose batch axes a squeeze() drops. Truth: torch's own output."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.explain.probe import extract_features
from cnnlab.inspect import batch_axes

pytestmark = pytest.mark.usefixtures("one_thread")


class Squeezed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(4, 6)

    def forward(self, seq):
        return self.gru(seq)[0].squeeze()  # (T, B, H); (T, H) for one image


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = Squeezed()
        self.fc = nn.Linear(6, 3)

    def sequence(self, x):
        """(B, 1, 2, 4) images → (T = 2, B, 4) rows, sequence first."""
        return x.flatten(1, 2).permute(1, 0, 2)

    def forward(self, x):
        out = self.rnn(self.sequence(x))
        return self.fc(out.mean(0))


def test_a_squeezed_sequence_first_output_of_two_steps_is_read_images_first():
    torch.manual_seed(0)
    model = Net().eval()
    x, y = torch.randn(24, 1, 2, 4), torch.randint(0, 3, (24,))
    with torch.no_grad():
        truth = model.rnn(model.sequence(x))  # (T, B, H)
        alone = model.rnn(model.sequence(x[:1]))
    assert truth.shape == (2, 24, 6) and alone.shape == (2, 6)  # torch: one image's B dropped
    assert batch_axes(model, x) == {"rnn.gru": 1, "rnn": 1}  # the GRU too: (T, B, H)
    got, _ = extract_features(model, (x, y), ["rnn"], cap=10**6)
    # each image's own 2·6 numbers (the order of steps and units aside)
    mine = truth.permute(1, 0, 2).flatten(1)
    assert torch.allclose(got["rnn"].sort(1).values, mine.sort(1).values, atol=1e-6)
