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
from cnnlab.train.fp32_layers import fp32_layers, keep_fp32, restore, slow_in_bf16

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
        (nn.Conv2d(8, 8, 7, 1, 3, groups=8), True),
        (nn.Conv2d(8, 8, (3, 5), 1, (1, 2), groups=8), True),
        (nn.Conv2d(8, 8, (1, 7), 1, (0, 3), groups=8), False),  # a row: as fast as fp32
        (nn.Conv2d(8, 8, (7, 1), 1, (3, 0), groups=8), False),  # a column: faster in bf16
        (nn.Conv2d(8, 8, 2, 1, groups=8), False),  # smaller than 3×3: faster in bf16
        (nn.Conv2d(8, 16, 3, 1, 1, groups=8), True),  # depthwise, multiplier 2
        (nn.Conv2d(8, 16, (1, 7), 1, (0, 3), groups=8), True),
        (nn.Conv2d(8, 8, 3, 1, 2, dilation=2, groups=8), True),  # dilated 3×3 stride 1
        (nn.Conv2d(8, 8, 3, 2, 1, groups=4), False),  # grouped, not depthwise
        (nn.Conv2d(128, 128, 3, 2, 1, groups=32), False),  # ResNeXt's 32 groups of 4
        (nn.Conv2d(8, 8, 5, 2, 2), False),  # dense
        (nn.Conv2d(8, 8, 3, 1, 2, dilation=2), False),  # dense, dilated
        (nn.Conv1d(8, 8, 3, 1, 1, groups=8), False),
        (nn.Conv1d(8, 8, 7, 1, 3, groups=8), False),
        (nn.Conv1d(8, 8, 3, 1, 2, dilation=2, groups=8), False),
        (nn.Conv1d(8, 16, 3, 1, 1, groups=8), False),
        (nn.Conv1d(8, 8, 7, 2, 3, groups=8), True),  # strided: general bf16 input gradient
        (nn.Conv3d(8, 8, 3, 1, 1, groups=8), False),
        (nn.Conv3d(8, 8, 5, 1, 2, groups=8), False),
        (nn.Conv3d(8, 8, 3, 2, 1, groups=8), True),  # strided, as in 2-d
        (nn.ConvTranspose2d(8, 8, 3, 1, 1, groups=8), True),  # depthwise transposed
        (nn.ConvTranspose2d(8, 8, 2, 2, groups=8), True),
        (nn.ConvTranspose2d(8, 8, 4, 2, 1, groups=2), True),  # grouped transposed
        (nn.ConvTranspose2d(8, 4, 2, 2), False),  # dense: U-Net's up-convolution
        (nn.Linear(8, 8), False),
    ],
)
def test_which_layers_are_slow_in_bf16(layer, slow):
    assert slow_in_bf16(layer) is slow


def test_fp32_layers_of_a_spec_are_its_strided_depthwise_conv():
    assert fp32_layers(cnnlab.build(DW)) == ["2"]
    assert fp32_layers(cnnlab.build("fast")) == []  # fast's speed in bf16 is untouched


@pytest.mark.parametrize(
    ("layer", "shape", "layout"),
    [
        (nn.Conv2d(16, 16, 5, 2, 2, groups=16), (4, 16, 12, 12), torch.contiguous_format),
        (nn.Conv1d(16, 16, 7, 2, 3, groups=16), (4, 16, 12), torch.contiguous_format),
        (nn.Conv3d(16, 16, 3, 2, 1, groups=16), (4, 16, 6, 6, 6), torch.channels_last_3d),
        (nn.ConvTranspose2d(16, 16, 4, 2, 1, groups=4), (4, 16, 6, 6), torch.channels_last),
    ],
)
def test_kept_layers_of_every_kind_compute_as_a_plain_fp32_call(layer, shape, layout):
    """Truth: the layer called in fp32 outside autocast, its output rounded to bf16 (x as a
    bf16 layer before it hands it on). Without keep_fp32 autocast computes the layer in bf16,
    which differs. Every kind slow_in_bf16 picks; the output keeps x's layout, the weight's
    gradient stays fp32."""
    torch.manual_seed(0)
    x = torch.randn(shape).bfloat16().contiguous(memory_format=layout)
    truth = layer(x.float()).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = layer(x)
    keep_fp32(layer, [""])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kept = layer(x)
    assert kept.dtype == torch.bfloat16 and torch.equal(kept, truth)
    assert not torch.equal(plain, truth)
    assert kept.is_contiguous(memory_format=layout)
    kept.float().sum().backward()
    assert layer.weight.grad.dtype == torch.float32


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
    """Names of the layers whose forward keep_fp32 replaced (a compile wrapper's own
    instance forward is not one)."""
    kind = fp32_layers_module._Fp32Forward
    return [name for name, m in model.named_modules() if isinstance(vars(m).get("forward"), kind)]


def test_bf16_run_records_its_fp32_layers_and_reloads_them(tmp_path):
    result = train(DW, "digits", tmp_path / "run", TrainConfig(**BF16))
    config = json.loads((tmp_path / "run/config.json").read_text())
    assert config["precision_used"] == "bf16" and config["fp32_layers"] == ["2"]
    assert _kept(result["model"]) == []  # handed back as the caller's own module
    assert [n for n in result["notes"] if "fp32" in n] == [
        "1 convolution (2) computed in fp32 within bf16: its bf16 kernels are slower on "
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
        kept_during = []

        def spying(model, names, kept_during=kept_during):
            keep_fp32(model, names)
            kept_during.append(_kept(model))

        monkeypatch.setattr(fp32_layers_module, "keep_fp32", spying)
        result = train(None, None, out, resume=True)
        monkeypatch.undo()
        assert kept_during == [recorded]  # the resumed session computed them in fp32
        assert _kept(result["model"]) == []


COMPILED_CHILD = """
import torch
from torch import nn


def make():
    block = nn.Sequential(nn.Conv2d(8, 8, 3, 2, 1, groups=8), nn.ReLU())
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        torch.compile(block, backend="eager"),  # dynamo without inductor's compile time
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )
"""


def test_a_run_with_a_compiled_child_records_plain_names_and_opens(tmp_path):
    """The trained model names the layer `1._orig_mod.0`; load_run rebuilds it eager
    (`1.0`): config.json records the plain name, and load_run keeps that layer in fp32."""
    from cnnlab.train.source import parse_model_ref

    (tmp_path / "f.py").write_text(COMPILED_CHILD)
    source = parse_model_ref(f"{tmp_path / 'f.py'}:make")
    config = TrainConfig(**{**BF16, "epochs": 1})
    train(source, "digits", tmp_path / "run", config)
    assert json.loads((tmp_path / "run/config.json").read_text())["fp32_layers"] == ["1.0"]
    assert _kept(load_run(tmp_path / "run").model) == ["1.0"]


def test_names_resolve_with_or_without_orig_mod():
    """A run recorded before plain names (`1._orig_mod.0`) opens on the eager rebuild, and
    a plain name finds the layer inside a compiled child."""
    eager = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Sequential(nn.Conv2d(8, 8, 3, 2, groups=8)))
    keep_fp32(eager, ["1._orig_mod.0"])
    assert _kept(eager) == ["1.0"]
    compiled = nn.Sequential(nn.Conv2d(1, 8, 3), torch.compile(nn.Sequential(eager[1][0])))
    assert fp32_layers(compiled) == ["1.0"]
    restore(compiled)
    keep_fp32(compiled, ["1.0"])
    assert _kept(compiled) == ["1._orig_mod.0"]


class MaskedConv(nn.Conv2d):
    def forward(self, x, mask=None):
        return super().forward(x) if mask is None else super().forward(x) * mask


def test_a_kept_layer_passes_further_arguments_on():
    torch.manual_seed(0)
    conv = MaskedConv(8, 8, 5, 2, 2, groups=8)
    x, mask = torch.randn(2, 8, 8, 8), torch.zeros(1, 8, 1, 1)
    keep_fp32(conv, [""])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(conv(x, mask=mask), torch.zeros(2, 8, 4, 4))
        assert torch.equal(conv(x, mask), torch.zeros(2, 8, 4, 4))


def test_a_forward_the_user_set_is_left_alone():
    model = cnnlab.build(DW)

    def own(x):
        return x[:, :, ::2, ::2]

    model[2].forward = own
    assert fp32_layers(model) == []
    keep_fp32(model, ["2"])  # a recorded name: the user's forward still stands
    restore(model)
    assert vars(model[2])["forward"] is own


def test_train_hands_the_module_back_as_it_was(tmp_path):
    """After a bf16 run the caller's module has no instance forward, scripts, and computes
    as load_run's model does outside autocast (both fp32 there); restore makes load_run's
    model scriptable as well, and a later fp32 run of it records and keeps none."""
    torch.manual_seed(0)
    model = cnnlab.build(DW)
    trained = train(model, "digits", tmp_path / "run", TrainConfig(**BF16))["model"]
    assert trained is model and all("forward" not in vars(m) for m in model.modules())
    x = torch.randn(4, *DW["input"])
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x), rtol=0, atol=0)
        opened = load_run(tmp_path / "run", model=cnnlab.build(DW)).model
        assert _kept(opened) == ["2"]
        # the trained module is channels-last, the opened one not: float32 rounding apart
        torch.testing.assert_close(opened(x), model(x))
        restore(opened)
        torch.testing.assert_close(torch.jit.script(opened)(x), model(x))
    keep_fp32(opened, ["2"])  # as load_run hands it over
    fp32 = TrainConfig(**{**BF16, "precision": "fp32", "epochs": 1})
    again = train(opened, "digits", tmp_path / "fp32", fp32)["model"]
    assert json.loads((tmp_path / "fp32/config.json").read_text())["fp32_layers"] == []
    assert _kept(again) == []


def test_an_interrupted_run_hands_the_module_back_as_it_was(tmp_path):
    """A run that ends early (Ctrl-C at step 3) takes the fp32 forwards away as well. Steps
    are counted by a weight's gradient (train's checks before the first step run forwards,
    a train-mode one too, but no backward)."""
    model, calls = cnnlab.build(DW), {"n": 0}

    def hook(param):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)

    next(model.parameters()).register_post_accumulate_grad_hook(hook)
    with pytest.raises(TrainingInterrupted):
        train(model, "digits", tmp_path / "run", TrainConfig(**BF16))
    assert calls["n"] >= 3 and _kept(model) == []


MIXED = """
import torch
from torch import nn


class Mixed(nn.Module):
    \"\"\"One layer of each kind slow_in_bf16 tells apart, on digits' (B, 1, 8, 8).\"\"\"

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.dilated = nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16)  # fp32
        self.expand = nn.Conv2d(16, 32, 3, padding=1, groups=16)  # multiplier 2: fp32
        self.grouped = nn.Conv2d(32, 32, 3, 2, 1, groups=8)  # grouped: bf16
        self.up = nn.ConvTranspose2d(32, 32, 2, 2, groups=32)  # fp32
        self.seq = nn.Conv1d(32, 32, 7, 2, 3, groups=32)  # strided: fp32
        self.row = nn.Conv1d(32, 32, 7, 1, 3, groups=32)  # bf16
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.expand(self.dilated(x)))
        x = self.up(torch.relu(self.grouped(x)))  # (B, 32, 8, 8)
        x = self.row(self.seq(x.flatten(2)))  # (B, 32, 32)
        return self.head(x.mean(2))


def make():
    return Mixed()
"""
MIXED_KEPT = ["dilated", "expand", "up", "seq"]


def _mixed() -> nn.Module:
    namespace: dict = {}
    exec(MIXED, namespace)
    return namespace["make"]()


def test_a_mixed_model_trains_a_step_in_bf16_as_in_fp32():
    """One SGD step, bf16 with the picked layers in fp32 against the model in fp32 (the
    truth): loss, gradients and the outputs after the step agree to bf16's precision; the
    picked layers' weight gradients are fp32 as their weights."""
    torch.manual_seed(0)
    model = _mixed().to(memory_format=torch.channels_last)
    twin = copy.deepcopy(model)
    assert fp32_layers(model) == MIXED_KEPT
    keep_fp32(model, MIXED_KEPT)
    x = torch.randn(32, 1, 8, 8).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,))
    losses = []
    for net, amp in ((model, True), (twin, False)):
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = nn.functional.cross_entropy(net(x).float(), y)
        loss.backward()
        opt.step()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1], rtol=0.02, atol=0.02)
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert p.grad.dtype == torch.float32
        torch.testing.assert_close(p.grad, q.grad, rtol=0.1, atol=0.02, msg=name)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        after = model(x).float()
    with torch.no_grad():
        torch.testing.assert_close(after, twin(x), rtol=0.05, atol=0.05)


def test_a_run_records_and_reopens_every_kind_of_kept_layer(tmp_path):
    """A 1-d, a transposed, a dilated and a multiplier-2 conv: config.json names them,
    load_run keeps them in fp32 and computes as the trained module outside autocast."""
    from cnnlab.train.source import parse_model_ref

    (tmp_path / "f.py").write_text(MIXED)
    source = parse_model_ref(f"{tmp_path / 'f.py'}:make")
    result = train(source, "digits", tmp_path / "run", TrainConfig(**{**BF16, "epochs": 1}))
    assert json.loads((tmp_path / "run/config.json").read_text())["fp32_layers"] == MIXED_KEPT
    opened = load_run(tmp_path / "run").model
    assert _kept(opened) == MIXED_KEPT
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        truth = result["model"](x)
        torch.testing.assert_close(opened(x), truth)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.testing.assert_close(opened(x).float(), truth, rtol=0.05, atol=0.05)
