"""Weights trained with the older `torch.nn.utils.weight_norm` (`conv.weight_g`,
`conv.weight_v`), imported into the same code moved to `torch.nn.utils.parametrizations.
weight_norm` (`conv.parametrizations.weight.original0`, `original1`): torch's own
`load_state_dict` takes them (the parametrization's compatibility hook renames them), and
`cnnlab import` refused them as names the model lacks. Truth: the logits of the old module
that saved them, and of torch's load_state_dict into the new one."""

from __future__ import annotations

import warnings

import torch
from safetensors.torch import save_file

from cnnlab.train.importing import import_run
from cnnlab.train.rundir import load_run
from cnnlab.train.source import parse_model_ref

NETS = """
import torch
from torch import nn
from torch.nn.utils import parametrizations


def make(classes=10):
    torch.manual_seed(0)
    return nn.Sequential(
        parametrizations.weight_norm(nn.Conv2d(1, 4, 3, padding=1)), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), parametrizations.weight_norm(nn.Linear(4, classes)),
    )
"""


def _old() -> torch.nn.Module:
    torch.manual_seed(1)  # weights of its own, not the factory's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated
        wn = torch.nn.utils.weight_norm
        return torch.nn.Sequential(
            wn(torch.nn.Conv2d(1, 4, 3, padding=1)), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(), wn(torch.nn.Linear(4, 10)),
        ).eval()  # fmt: skip


def test_old_weight_norm_names_import_as_torch_loads_them(tmp_path):
    old = _old()
    assert {"0.weight_g", "0.weight_v", "4.weight_g"} <= set(old.state_dict())
    save_file(old.state_dict(), tmp_path / "w.safetensors")
    (tmp_path / "nets.py").write_text(NETS)
    ref = parse_model_ref(f"{tmp_path / 'nets.py'}:make")
    theirs = ref.build()
    theirs.load_state_dict(old.state_dict())  # torch's own rename
    import_run(ref, tmp_path / "w.safetensors", tmp_path / "run", data="digits")
    run = load_run(tmp_path / "run")
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(run.model(x), old(x), atol=1e-6)
        assert torch.allclose(run.model(x), theirs.eval()(x), atol=1e-6)
