"""A model with a reentrant activation checkpoint: the commands that only read it (eval,
predict) printed torch's "None of the inputs have requires_grad=True. Gradients will be None"
on every run, though no gradient is wanted there."""

from __future__ import annotations

import warnings

import torch

from cnnlab.cli import main
from cnnlab.train.source import parse_model_ref
from tiny_nets import imported_run

NETS = """
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        x = checkpoint(self.block, x, use_reentrant=True)
        return self.head(x.mean((2, 3)))


def make():
    return Net()
"""


def test_eval_of_a_checkpointed_model_prints_no_gradient_warning(tmp_path, capsys):
    out = imported_run(tmp_path, NETS, data="digits")
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # every warning reaches `seen`, as a user's would
        assert main(["eval", str(out)]) == 0
    assert not [w for w in seen if "requires_grad=True" in str(w.message)]
    assert "requires_grad=True" not in capsys.readouterr().err
    with warnings.catch_warnings(record=True) as seen:  # outside a command: torch's own
        warnings.simplefilter("always")
        parse_model_ref(f"{tmp_path / 'nets.py'}:make").build()(torch.zeros(1, 1, 8, 8))
    assert [w for w in seen if "requires_grad=True" in str(w.message)]


def test_diagnose_says_a_reentrant_checkpoint_on_the_images_cuts_its_layers_off(tmp_path, capsys):
    """The block checkpointed on the images gets no gradient in training (torch's warning says
    so); diagnose found it cut off but pointed only at no_grad and .detach()."""
    out = imported_run(tmp_path, NETS, data="digits")
    capsys.readouterr()
    assert main(["diagnose", str(out)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "no gradient reaches 1 weighted layer(s) (block.0)" in said
    assert "use_reentrant=True" in said and "use_reentrant=False" in said
