"""The report's stages of Hugging Face's CvT, built small: its three stages' outputs
(`encoder.stages.N`, each returning (map, class token)), not the query projections' norms
inside them (the last map of each size in the forward), nor the keys' and values' maps that
each stage projects at half its size. Truth: forward hooks on the model itself: each stage's
map is what the next stage reads, the last one CvtModel's last_hidden_state."""

from __future__ import annotations

import pytest
import torch

from cnnlab.report.sources import Budget, Sources
from cnnlab.train.rundir import load_run
from tiny_nets import imported_run

pytest.importorskip("transformers")

NETS = """
import torch
import transformers
from torch import nn


class Cvt(nn.Module):
    def __init__(self):
        super().__init__()
        # depth[i] > i: CvT's stage i reads its i-th drop-path rate of depth[i]
        config = transformers.CvtConfig(num_channels=1, num_labels=10, embed_dim=[8, 16, 16],
                                        num_heads=[1, 2, 2], depth=[1, 2, 3])
        self.net = transformers.CvtForImageClassification(config)

    def forward(self, x):
        return self.net(pixel_values=x).logits


def make():
    torch.manual_seed(0)
    return Cvt()
"""


def _maps(model, x, names):
    """{name: the map module `name` returns (its output's first item)}, {name: its input}."""
    out, inp, hooks = {}, {}, []
    for name in names:

        def hook(m, args, y, name=name):
            inp[name], out[name] = args[0].detach().clone(), y[0].detach().clone()

        hooks.append(model.get_submodule(name).register_forward_hook(hook))
    with torch.no_grad():
        last = model.net.cvt(x).last_hidden_state
    for h in hooks:
        h.remove()
    return out, inp, last


def test_cvt_stages_are_its_three_stages(tmp_path):
    path = imported_run(tmp_path, NETS, data="digits", input_shape=(1, 32, 32))
    run = load_run(path)
    src = Sources(path, run, None, Budget(eval_images=16))
    stages = [f"net.cvt.encoder.stages.{i}" for i in range(3)]
    assert src.stages == stages
    _, x, _ = src.test
    run.model.eval()
    out, inp, last = _maps(run.model, x[:4], stages)
    assert out[stages[0]].shape[1:] == (8, 8, 8) and out[stages[2]].shape[1:] == (16, 2, 2)
    for stage, reader in zip(stages[:-1], stages[1:], strict=True):
        assert torch.equal(out[stage], inp[reader])  # the map the next stage reads
    torch.testing.assert_close(out[stages[2]], last, rtol=0, atol=0)
