"""A model brought as it was deployed: scripted whole (torch.jit.script, or torch.jit.load of
a saved TorchScript file). Its layers take no hooks and are no torch.nn layer classes, so
every method that reads a layer found none and said the model had none ('no nn.Conv2d
layer', a probe table of the input alone, no maps drawn and nothing said). Truth: what
torch itself says of the scripted model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.cli import main
from cnnlab.errors import ExplainError
from cnnlab.explain import filters, gradcam, linear_probe

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

SCRIPTED_FILE = """
import torch
from torch import nn


def make():
    return torch.jit.script(nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 10),
    ))
"""

MLP_FILE = """
from torch import nn


def make():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
"""


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 3),
    )  # fmt: skip


def test_the_methods_that_read_layers_say_the_model_is_torchscript():
    net = _net().eval()
    scripted = torch.jit.script(net)
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    # torch: no nn.Conv2d among its modules, and a hook on one of them never fires
    assert not any(isinstance(m, nn.Conv2d) for m in scripted.modules())
    seen = []
    scripted[0].register_forward_hook(lambda *a: seen.append(a))
    scripted(x)
    assert not seen
    for call in (
        lambda m: gradcam(m, x),
        lambda m: filters(m),
        lambda m: linear_probe(m, (x, y), (x, y), epochs=1),
    ):
        with pytest.raises(ExplainError, match="the model is TorchScript.*before scripting"):
            call(scripted)
        call(net)  # the nn.Module from before scripting: explained


def test_the_commands_say_so_and_visualize_maps_of_no_map_is_an_error(tmp_path, capsys):
    """visualize --maps of a model without maps (an MLP too) drew nothing and said nothing."""
    from PIL import Image

    from tiny_nets import imported_run

    image = tmp_path / "x.png"
    Image.new("L", (8, 8), 128).save(image)
    (tmp_path / "s").mkdir(), (tmp_path / "m").mkdir()
    scripted = imported_run(tmp_path / "s", SCRIPTED_FILE, data="digits", input_shape=(1, 8, 8))
    mlp = imported_run(tmp_path / "m", MLP_FILE, data="digits", input_shape=(1, 8, 8))
    for argv in (
        ["explain", str(scripted), str(image), "--out", str(tmp_path / "e")],
        ["visualize", str(scripted), "--maps", str(image), "--out", str(tmp_path / "v")],
        ["probe", str(scripted), "--train", "64", "--test", "32", "--epochs", "1"],
    ):
        assert main(argv) == 2
        assert "the model is TorchScript" in capsys.readouterr().err
    assert main(["visualize", str(mlp), "--maps", str(image), "--out", str(tmp_path / "v")]) == 2
    said = capsys.readouterr()
    assert "no layer with a (C, H, W) map" in said.err and not said.out
