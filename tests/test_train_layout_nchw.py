"""A model that runs laid out NCHW but not channels-last (the PyTorch tutorials' `x.view(-1,
16 * 5 * 5)` after a conv) trains NCHW, says so in one note and records channels_last false
in config.json, where it was refused ("cannot train channels-last ... --no-channels-last").
Truth: torch's own refusal of the view on a channels-last map, and the same model trained
with channels_last=False given: bitwise the same weights, and a killed run resumed ends so."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from cnnlab.errors import SpecError
from cnnlab.train import TrainConfig, train
from cnnlab.train import loop as loop_module
from cnnlab.train.checkpoint import load_weights

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = TrainConfig(epochs=2, batch_size=128, flip=False, tta=False, precision="fp32")


class ViewNet(nn.Module):
    """The tutorials' head: x.view(-1, C*H*W) after a conv."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(4 * 4 * 4, classes)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.view(-1, 4 * 4 * 4))


def view_net(classes: int = 10) -> ViewNet:
    torch.manual_seed(0)
    return ViewNet(classes)


class Killed(BaseException):
    pass


def test_a_view_after_a_conv_trains_nchw_as_if_asked_and_says_so(tmp_path):
    nhwc = view_net().to(memory_format=torch.channels_last)
    with pytest.raises(RuntimeError, match="view size is not compatible"):  # torch's refusal
        nhwc(torch.zeros(2, 1, 8, 8).contiguous(memory_format=torch.channels_last))
    assert CONFIG.channels_last  # the default layout
    result = train(view_net(), "digits", tmp_path / "auto", CONFIG)
    asked = dataclasses.replace(CONFIG, channels_last=False)
    train(view_net(), "digits", tmp_path / "nchw", asked)
    auto, nchw = (load_weights(tmp_path / run / "model.safetensors") for run in ("auto", "nchw"))
    assert auto.keys() == nchw.keys()
    assert all(torch.equal(auto[name], nchw[name]) for name in auto)
    (note,) = [n for n in result["notes"] if "channels-last" in n]
    assert "trained NCHW" in note and "in ViewNet.forward, view size is not compatible" in note
    assert ".reshape or .flatten(1)" in note and "\n" not in note
    config = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert config["channels_last"] is False and "view size" in config["channels_last_refused"]


def test_a_run_trained_nchw_so_resumes_with_the_config_it_started_with(tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    train(view_net(), "digits", ref, CONFIG)
    out, original, steps = tmp_path / "run", loop_module._step, {"n": 0}

    def killed_at_12(parts, position, *args):
        steps["n"] += 1
        if steps["n"] == 12:  # in the second epoch (10 steps an epoch)
            raise Killed
        return original(parts, position, *args)

    monkeypatch.setattr(loop_module, "_step", killed_at_12)
    with pytest.raises(Killed):
        train(view_net(), "digits", out, CONFIG, checkpoint_seconds=0)
    monkeypatch.undo()
    train(view_net(), "digits", out, CONFIG, resume=True)  # channels_last True as given first
    resumed, whole = (load_weights(run / "model.safetensors") for run in (out, ref))
    assert all(torch.equal(resumed[name], whole[name]) for name in whole)
    assert _rows(out) == _rows(ref)


def _rows(out) -> list[dict]:
    timed = {"seconds", "img_per_s", "wall"}
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in timed} for x in lines]


class ViewNetAndInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = view_net()

    def forward(self, x):
        return self.net(x), x


@pytest.mark.parametrize(
    ("model", "told"),
    [
        (ViewNetAndInput, "returns a tuple"),
        (lambda: nn.Sequential(view_net(), nn.Softmax(dim=1)), "ends in a softmax"),
        (lambda: view_net(5), r"outputs \(5,\) per image but the data has 10 classes"),
    ],
)
def test_what_fails_nchw_too_is_the_problem_told(model, told):
    with pytest.raises(SpecError, match=told) as info:
        train(model(), "digits", None, CONFIG)
    assert "channels-last" not in str(info.value)


def test_the_cli_trains_the_tutorials_model_with_the_note(tmp_path, capsys):
    from cnnlab.cli import main

    code = tmp_path / "nets.py"
    code.write_text(
        "import torch\nfrom torch import nn\n\n\n"
        "class ViewNet(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(64, 10)\n\n"
        "    def forward(self, x):\n"
        "        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)\n"
        "        return self.fc(x.view(-1, 64))\n\n\n"
        "def make():\n    return ViewNet()\n"
    )
    args = ["train", "--model", f"{code}:make", "--data", "digits", "--epochs", "1"]
    assert main([*args, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "note: model" in out and "trained NCHW" in out
    assert main([*args, "--out", str(tmp_path / "run"), "--quiet", "--resume"]) == 0
