"""`cnnlab import` takes what torch's own `load_state_dict` (strict) takes from a safetensors
file: the truth is torch loading the same file into the same model."""

import re
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from cnnlab.errors import RunError
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

WRAPPED = """

class Wrapped(nn.Module):
    def __init__(self):
        super().__init__()
        self.m = make_net()

    def forward(self, x):
        return self.m(x)


def wrapped():
    return Wrapped()
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


def test_weights_saved_under_another_wrapper_name_are_told_the_rename(tmp_path):
    # the same network held as `self.net` where it was saved and `self.m` in the factory
    (tmp_path / "nets.py").write_text(textwrap.dedent(NETS + WRAPPED))
    source = parse_model_ref(f"{tmp_path / 'nets.py'}:wrapped", [])
    torch.manual_seed(0)
    inner = parse_model_ref(f"{tmp_path / 'nets.py'}:make_net", []).build()
    weights = tmp_path / "w.safetensors"
    save_file({"net." + k: v for k, v in inner.state_dict().items()}, weights)
    with pytest.raises(RunError) as info:
        import_run(source, weights, tmp_path / "run", "digits")
    fix = re.search(r"rename them: (\{.*state\.items\(\)\})", str(info.value))
    assert fix, str(info.value)
    fixed = tmp_path / "fixed.safetensors"
    save_file(eval(fix.group(1), {"state": load_file(weights)}), fixed)
    import_run(source, fixed, tmp_path / "run", "digits")
    truth = source.build()
    truth.m.load_state_dict(inner.state_dict())  # torch: the same tensors under `m.`
    saved = load_file(tmp_path / "run" / "model.safetensors")
    for k, v in truth.state_dict().items():
        assert torch.equal(saved[k], v), k
