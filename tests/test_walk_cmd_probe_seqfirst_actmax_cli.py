"""`cnnlab visualize --actmax` on a run trained from the user's CRNN file: it counted a
layer's channels from one image's output at the layer's channel dim, which for a
sequence-first output whose channels no op shows (the conv columns permuted to
(W, B, C·H)) is dim 1, the images' (1 of them): 1 channel drawn where activation
maximisation reads W (its images moved first, as the probe reads it). Now counted as
activation_maximization reads the layer. Truth: torch's shapes of the layers' outputs."""

from __future__ import annotations

import pytest
import torch

from cnnlab.cli import main
from cnnlab.train import load_run
from tiny_nets import trained_from_code

pytestmark = pytest.mark.usefixtures("one_thread")

CODE = """
from torch import nn


class Columns(nn.Module):
    def forward(self, f):
        return f.permute(3, 0, 1, 2).flatten(2)  # (W, B, C*H): sequence first, for CTC


class CRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.cols = Columns()
        self.rnn = nn.LSTM(8 * 4, 6)
        self.head = nn.Linear(6, 10)

    def forward(self, x):
        out, _ = self.rnn(self.cols(self.conv(x)))
        return self.head(out[-1])


def make():
    return CRNN()
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.manual_seed(0)
    return trained_from_code(tmp_path_factory.mktemp("crnn"), CODE, input_size="1,8,8")


def _outputs(run_dir) -> dict:
    run = load_run(run_dir)
    seen = {}
    for name in ("cols", "rnn"):
        module = run.model.get_submodule(name)
        module.register_forward_hook(lambda m, i, o, n=name: seen.setdefault(n, o))
    with torch.no_grad():
        run.model.eval()(run.preprocess(run.dataset("test").images[:2]))
    return seen


@pytest.mark.parametrize("layer", ["cols", "rnn"])
def test_actmax_draws_every_channel_of_a_sequence_first_layer(run_dir, tmp_path, capsys, layer):
    seen = _outputs(run_dir)
    width, hidden = seen["cols"].shape[0], seen["rnn"][0].shape[-1]
    assert seen["cols"].shape[1] == 2 and (width, hidden) == (4, 6)  # torch: (W, B, ·)
    capsys.readouterr()
    argv = ["visualize", str(run_dir), "--actmax", layer, "--channels", "16", "--steps", "1"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("channel ")]
    # the columns read images first, (B, W, C·H): W channels; the LSTM's its hidden units
    assert len(said) == (width if layer == "cols" else hidden)
