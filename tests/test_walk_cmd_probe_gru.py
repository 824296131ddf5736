"""A CRNN (conv columns read as a sequence by nn.GRU): the GRU returns (output, h_n), both
3-D, so `probe --layers rnn`, `visualize --actmax rnn` and the Python functions refused it
('returns a tuple, which is neither a tensor nor ...') while the same net with nn.LSTM,
whose (output, (h_n, c_n)) holds one 3-D tensor, was read. torch documents the first item
as the layer's output. Truth: the same net whose `rnn` returns torch's `output` alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import explain

pytestmark = pytest.mark.usefixtures("one_thread")


class OutputOnly(nn.Module):
    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.gru = rnn

    def forward(self, seq):
        return self.gru(seq)[0]


class CRNN(nn.Module):
    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.rnn = rnn
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        f = self.conv(x)  # (B, C, H, W): W columns of C·H features
        out = self.rnn(f.permute(0, 3, 1, 2).flatten(2))
        out = out[0] if isinstance(out, tuple) else out
        return self.fc(out[:, -1])


def _pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    plain = CRNN(nn.GRU(4 * 8, 8, batch_first=True)).eval()
    twin = CRNN(OutputOnly(nn.GRU(4 * 8, 8, batch_first=True))).eval()
    twin.load_state_dict({k.replace("rnn.", "rnn.gru."): v for k, v in plain.state_dict().items()})
    return plain, twin


def test_a_grus_output_is_probed_as_torch_documents_it():
    plain, twin = _pair()
    torch.manual_seed(1)
    x, y = torch.randn(48, 1, 8, 8), torch.randint(0, 3, (48,))
    train, test = (x[:32], y[:32]), (x[32:], y[32:])
    got = explain.linear_probe(plain, train, test, layers=["rnn"], epochs=5)
    truth = explain.linear_probe(twin, train, test, layers=["rnn"], epochs=5)
    assert got == truth


def test_activation_maximisation_reads_a_grus_output():
    plain, twin = _pair()
    got = explain.activation_maximization(plain, "rnn", [0, 3], steps=3, input_size=(1, 8, 8))
    truth = explain.activation_maximization(twin, "rnn", [0, 3], steps=3, input_size=(1, 8, 8))
    assert torch.allclose(got.images, truth.images) and torch.allclose(
        torch.as_tensor(got.activation), torch.as_tensor(truth.activation)
    )
