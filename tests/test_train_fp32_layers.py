"""Layers kept in fp32 under bf16 autocast (cnnlab.train.fp32_layers): which ones, that they
compute in fp32 as a plain fp32 call does, and that a run records them, reloads them and
resumes with the ones it recorded. No timings: benchmarks/bf16_layers.py measures."""

from __future__ import annotations

import copy
import importlib
import json
import os
import signal

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.train import TrainConfig, TrainingInterrupted, load_run, train
from cnnlab.train.fp32_layers import fp32_layers, keep_fp32, slow_in_bf16

pytestmark = pytest.mark.usefixtures("one_thread")

build_module = importlib.import_module("cnnlab.design.build")  # not the function `build`
inputs_module = importlib.import_module("cnnlab.train.inputs")  # where train() builds
fp32_layers_module = importlib.import_module("cnnlab.train.fp32_layers")

# a strided depthwise 3×3 (kept in fp32) and a stride-1 depthwise 3×3 (left in bf16)
DW = {
    "name": "dw",
    "input": [1, 8, 8],
    "layers": [
        {"conv": {"filters": 8, "kernel": 3, "padding": "same"}},
        "relu",
        {"conv": {"filters": 8, "kernel": 3, "stride": 2, "padding": 1, "groups": 8}},
        "batchnorm",
        "relu",
        {"conv": {"filters": 8, "kernel": 3, "padding": "same", "groups": 8}},
        "relu",
        "gap",
        {"linear": 10},
    ],
}
BF16 = dict(epochs=2, batch_size=64, flip=False, tta=False, precision="bf16")


@pytest.mark.parametrize(
    ("layer", "slow"),
    [
        (nn.Conv2d(8, 8, 3, 1, 1, groups=8), False),  # oneDNN's bf16 depthwise kernel
        (nn.Conv2d(8, 8, 3, 2, 1, groups=8), True),  # stride 2: general bf16 kernel
        (nn.Conv2d(8, 8, 5, 1, 2, groups=8), True),  # 5×5: general bf16 weight gradient
        (nn.Conv2d(8, 16, (1, 7), 1, (0, 3), groups=8), True),  # depthwise, multiplier 2
        (nn.Conv2d(8, 8, 3, 2, 1, groups=4), False),  # grouped, not depthwise
        (nn.Conv2d(8, 8, 5, 2, 2), False),  # dense
        (nn.Conv1d(8, 8, 5, 2, groups=8), False),  # not measured: left alone
        (nn.Linear(8, 8), False),
    ],
)
def test_which_layers_are_slow_in_bf16(layer, slow):
    assert slow_in_bf16(layer) is slow


def test_fp32_layers_of_a_spec_are_its_strided_depthwise_conv():
    assert fp32_layers(cnnlab.build(DW)) == ["2"]
    assert fp32_layers(cnnlab.build("fast")) == []  # fast's speed in bf16 is untouched


def test_kept_layer_computes_as_a_plain_fp32_call():
    """Truth: the layer called in fp32 outside autocast, its output rounded to bf16. Without
    keep_fp32 autocast computes the layer in bf16, which differs."""
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 16, 5, 2, 2, groups=16)
    x = torch.randn(4, 16, 12, 12).bfloat16()  # as a bf16 layer before it hands it on
    truth = conv(x.float()).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = conv(x)
    keep_fp32(conv, [""])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kept = conv(x)
    assert kept.dtype == torch.bfloat16 and torch.equal(kept, truth)
    assert not torch.equal(plain, truth)
    kept.float().sum().backward()
    assert conv.weight.grad.dtype == torch.float32


def test_keep_fp32_survives_a_deep_copy_and_leaves_the_state_dict():
    model = cnnlab.build(DW)
    keys = list(model.state_dict())
    keep_fp32(model, ["2"])
    twin = copy.deepcopy(model)  # the EMA's copy
    assert list(model.state_dict()) == keys
    assert twin[2].forward.module is twin[2]  # the copy's layer, not the original's
    with pytest.raises(KeyError):
        keep_fp32(model, ["9"])


def test_a_model_with_kept_layers_still_pickles(tmp_path):
    """torch.save(model) after training: a bound function as forward did not unpickle."""
    model = cnnlab.build(DW)
    keep_fp32(model, ["2"])
    torch.save(model, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    assert loaded[2].forward.module is loaded[2]
    assert _kept(loaded) == ["2"]
    x = torch.randn(2, *DW["input"])
    torch.testing.assert_close(loaded(x), model(x))


def _kept(model: nn.Module) -> list[str]:
    """Names of the layers whose forward keep_fp32 replaced."""
    return [name for name, m in model.named_modules() if "forward" in vars(m)]


def test_bf16_run_records_its_fp32_layers_and_reloads_them(tmp_path):
    result = train(DW, "digits", tmp_path / "run", TrainConfig(**BF16))
    config = json.loads((tmp_path / "run/config.json").read_text())
    assert config["precision_used"] == "bf16" and config["fp32_layers"] == ["2"]
    assert _kept(result["model"]) == ["2"]
    assert [n for n in result["notes"] if "fp32" in n] == [
        "1 depthwise conv (2) computed in fp32 within bf16: their bf16 kernels are slower on "
        "this CPU (config.json: fp32_layers)"
    ]
    assert _kept(load_run(tmp_path / "run").model) == ["2"]
    plain = train(DW, "digits", tmp_path / "fp32", TrainConfig(**{**BF16, "precision": "fp32"}))
    assert not [n for n in plain["notes"] if "fp32" in n]
    assert json.loads((tmp_path / "fp32/config.json").read_text())["fp32_layers"] == []
    assert _kept(load_run(tmp_path / "fp32").model) == []


def test_resume_keeps_the_recorded_fp32_layers(tmp_path, monkeypatch):
    """A run whose first session kept no layer in fp32 (a rule that picked none, as before
    there was one) resumes without any, and one that kept layer 2 resumes with it: a resume
    takes config.json's record, it does not decide again."""
    original = build_module.build

    def interrupting(spec):
        model, calls = original(spec), {"n": 0}

        def hook(module, args, output):
            calls["n"] += module.training
            if calls["n"] == 20:  # epoch 2 of 2
                os.kill(os.getpid(), signal.SIGINT)

        model.register_forward_hook(hook)
        return model

    for rule, recorded in ((lambda model: [], []), (fp32_layers, ["2"])):
        out = tmp_path / f"run{len(recorded)}"
        monkeypatch.setattr(inputs_module, "build", interrupting)
        monkeypatch.setattr(fp32_layers_module, "fp32_layers", rule)
        with pytest.raises(TrainingInterrupted):
            train(DW, "digits", out, TrainConfig(**BF16))
        monkeypatch.undo()
        assert json.loads((out / "config.json").read_text())["fp32_layers"] == recorded
        result = train(None, None, out, resume=True)
        assert _kept(result["model"]) == recorded
