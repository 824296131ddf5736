"""Weights saved the way libraries save them, imported into the wrapper a user writes around
the library's model. Truth: the library model's own forward on the same images."""

from __future__ import annotations

import re
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from cnnlab.errors import RunError
from cnnlab.train.importing import import_run
from cnnlab.train.rundir import load_run
from cnnlab.train.source import parse_model_ref

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

HF = """
import torch
import transformers
from torch import nn


class Logits(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(pixel_values=x).logits


def inner():
    torch.manual_seed(0)
    config = transformers.ResNetConfig(
        num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
        layer_type="basic", num_labels=10,
    )
    return transformers.ResNetForImageClassification(config)


def make_net():
    return Logits(inner())
"""


def test_weights_saved_by_save_pretrained_import_into_a_wrapper_with_the_fix_given(tmp_path):
    pytest.importorskip("transformers")
    nets = tmp_path / "hfnets.py"
    nets.write_text(textwrap.dedent(HF))
    source = parse_model_ref(f"{nets}:make_net")
    library = parse_model_ref(f"{nets}:inner").build().eval()
    with torch.no_grad():  # weights a training elsewhere changed
        for p in library.parameters():
            p.add_(0.01 * torch.randn_like(p))
    library.save_pretrained(tmp_path / "saved")  # transformers' own format: model.safetensors
    weights = tmp_path / "saved" / "model.safetensors"
    with pytest.raises(RunError, match="behind 'net.'") as info:
        import_run(source, weights, tmp_path / "run", data="digits", input_shape=(1, 16, 16))
    said = str(info.value)
    fix = re.search(r"\{.*state\.items\(\)\}", said)  # the code the message gives
    assert fix, said  # was: "add the prefix to its names", with no way to do it
    state = load_file(weights)
    save_file(eval(fix.group(0), {"state": state}), tmp_path / "fixed.safetensors")
    import_run(
        source, tmp_path / "fixed.safetensors", tmp_path / "run", data="digits",
        input_shape=(1, 16, 16),
    )  # fmt: skip
    run = load_run(tmp_path / "run")
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(run.model(x), library(pixel_values=x).logits)
