"""`cnnlab import` takes what torch's own `load_state_dict` (strict) takes from a safetensors
file: the truth is torch loading the same file into the same model."""

import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from cnnlab.train.importing import import_run
from cnnlab.train.source import parse_model_ref

NETS = """
from torch import nn

def make_net():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(4, 10),
    )
"""


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(textwrap.dedent(NETS))
    return parse_model_ref(f"{path}:make_net", [])


def test_weights_without_batchnorm_counters_import_as_torch_loads_them(tmp_path, source):
    # exporters (timm's filters, converted TF/JAX weights) drop num_batches_tracked; a file
    # without torch's _metadata loads without it, the counter left as the model holds it
    torch.manual_seed(0)
    trained = source.build()
    trained[1].running_mean.normal_()
    state = {k: v for k, v in trained.state_dict().items() if "num_batches" not in k}
    weights = tmp_path / "w.safetensors"
    save_file(state, weights)
    truth = source.build()
    truth.load_state_dict(load_file(weights))  # strict: torch takes it

    result = import_run(source, weights, tmp_path / "run", "digits")

    saved = load_file(tmp_path / "run" / "model.safetensors")
    for k, v in truth.state_dict().items():
        assert torch.equal(saved[k], v), k
    assert result["evaluation"]["n"] == 359
