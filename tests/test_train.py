"""The trainer: schedule, optimizer groups, real training, resume exactness, NaN stop, Ctrl-C,
refusing to overwrite a run, nothing pickled, images per second, flips by data set and TTA's
views. Image folders: test_train_folders.py; a model given as a module: test_train_modules.py."""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.data import load_dataset
from cnnlab.errors import RunError
from cnnlab.train import (
    ConfigError,
    TrainConfig,
    TrainingDiverged,
    TrainingInterrupted,
    checkpoint,
    learning_rate,
    make_optimizer,
    train,
)

build_module = importlib.import_module(
    "cnnlab.design.build"
)  # `cnnlab.design.build` is the function
inputs_module = importlib.import_module("cnnlab.train.inputs")  # where train() builds

TINY = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [
        {"conv": {"filters": 8, "kernel": 3, "padding": "same"}},
        "batchnorm",
        "relu",
        {"maxpool": 2},
        {"dropout": 0.1},  # consumes the global torch RNG: resume must restore it
        {"conv": {"filters": 16, "kernel": 3, "padding": "same"}},
        "batchnorm",
        "relu",
        "gap",
        {"linear": 10},
    ],
}
# fp32 and no flip (digits are not mirror-symmetric); erase exercises the augmentation RNG
QUICK = dict(epochs=3, batch_size=64, flip=False, tta=False, precision="fp32", erase=0.3)

THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread (and do not fight other processes for cores)."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(THREADS)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load_weights(run_dir / "model.safetensors")


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _hooked_build(monkeypatch, hook):
    """Make train() build models carrying a forward hook `hook(calls) -> output or None`."""
    original = build_module.build
    calls = {"n": 0}

    def build(spec):
        model = original(spec)

        def forward_hook(module, args, output):
            if module.training:
                calls["n"] += 1
                return hook(calls["n"], output)
            return None

        model.register_forward_hook(forward_hook)
        return model

    monkeypatch.setattr(inputs_module, "build", build)


# --- pure parts --------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    schedule=st.sampled_from(["onecycle", "cosine"]),
    warmup=st.floats(0.05, 0.5),
    total=st.integers(20, 2000),
)
def test_schedule_warms_up_peaks_and_decays_to_zero(schedule, warmup, total):
    config = TrainConfig(schedule=schedule, warmup=warmup, lr=0.4)
    lrs = [learning_rate(config, s, total) for s in range(total)]
    peak = lrs.index(max(lrs))
    assert max(lrs) <= 0.4 + 1e-12
    assert abs(peak - warmup * total) <= 1 + 1e-9  # peak where the warm-up ends
    assert all(a <= b + 1e-12 for a, b in zip(lrs[:peak], lrs[1 : peak + 1], strict=True))
    assert all(a >= b - 1e-12 for a, b in zip(lrs[peak:], lrs[peak + 1 :], strict=False))
    assert lrs[-1] < 0.4 * 2 / (total * (1 - warmup)) + 1e-9  # ends near 0
    start = 0.04 if schedule == "onecycle" else 0.0  # one-cycle starts at lr/10
    assert lrs[0] == pytest.approx(start)


def test_weight_decay_skips_norms_and_biases():
    model = build_module.build(TINY)
    opt = make_optimizer(model, TrainConfig(weight_decay=5e-4))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        is_weight = name.endswith("weight") and not isinstance(
            model.get_submodule(name.rsplit(".", 1)[0]), torch.nn.BatchNorm2d
        )
        assert (id(p) in decayed) == is_weight, name
    assert opt.defaults["nesterov"] is True


@pytest.mark.parametrize(
    "bad, option",
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"schedule": "step"}, "schedule"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"ema": 1.5}, "ema"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_bad_config_names_the_option(bad, option):
    with pytest.raises(ConfigError, match=option):
        TrainConfig(**bad)


# --- real training -----------------------------------------------------------------------


def test_real_training_on_fashion_mnist_subset(tmp_path):
    """5,000 Fashion-MNIST training images, 2 epochs of a small CNN with the default recipe:
    ≥ 75 % accuracy on 2,000 test images (measured 81.8-82.8 % over seeds 0 and 1 and two
    learning rates; chance is 10 %)."""
    torch.set_num_threads(THREADS)  # a real model: all cores
    train_all = load_dataset("fashion-mnist", "train")
    test_all = load_dataset("fashion-mnist", "test")
    subset = (train_all.subset(torch.arange(5000)), test_all.subset(torch.arange(2000)))
    block = [{"conv": {"padding": "same", "bias": False}}, "batchnorm", "relu", {"maxpool": 2}]
    layers = []
    for filters in (16, 32, 64):  # 28 -> 14 -> 7 -> 3
        layers += [{"conv": {**block[0]["conv"], "filters": filters}}, *block[1:]]
    spec = {"name": "small", "input": [1, 28, 28], "layers": [*layers, "flatten", {"linear": 10}]}
    # no EMA: 140 steps are too few for a 0.99 average to forget the initial weights
    config = TrainConfig(epochs=2, batch_size=64, lr=0.05, ema=None, val_fraction=0.1)
    result = train(spec, subset, tmp_path / "run", config)
    assert result["test_acc"] >= 0.75, result
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "img_per_s"):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert "test_acc" in rows[-1] and "test_acc_tta" in rows[-1]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]


def test_refuses_existing_run_unless_resume_or_force(tmp_path):
    config = TrainConfig(**{**QUICK, "epochs": 1})
    first = train(TINY, "digits", tmp_path / "run", config)
    with pytest.raises(RunError, match="already exists.*--resume.*--force"):
        train(TINY, "digits", tmp_path / "run", config)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    second = train(TINY, "digits", tmp_path / "run", config, force=True)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # --force keeps user files
    assert second["val_acc"] == first["val_acc"]  # same seed, same run
    with pytest.raises(RunError, match="different options: lr"):
        train(
            TINY,
            "digits",
            tmp_path / "run",
            TrainConfig(**{**QUICK, "epochs": 1, "lr": 0.5}),
            resume=True,
        )


def test_nan_loss_stops_with_epoch_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    steps_per_epoch = 20  # digits: 1,294 training images // 64
    poison = steps_per_epoch + 5  # epoch 2, step 5

    def nan_at(n, output):
        return output * float("nan") if n == poison else None

    _hooked_build(monkeypatch, nan_at)
    # --resume refuses a new --lr (and would replay the same steps): the advice is --force
    advice = r"epoch 2, step 5.*learning rate.*too high.*start again with --force --lr 0.0"
    with pytest.raises(TrainingDiverged, match=advice):
        train(TINY, "digits", tmp_path / "run", TrainConfig(**QUICK))
    tensors, state = checkpoint.load_checkpoint(tmp_path / "run")
    assert state["epoch"] == 1 and state["step"] == 0
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_ctrl_c_saves_and_resume_is_exact(tmp_path, monkeypatch):
    """Truth: an uninterrupted run. SIGINT mid-epoch 2 -> TrainingInterrupted with a
    checkpoint at that step; resuming ends with bitwise the same weights."""
    config = TrainConfig(**QUICK)
    train(TINY, "digits", tmp_path / "ref", config)

    def interrupt_at(n, output):
        if n == 27:  # epoch 2, step 7
            os.kill(os.getpid(), signal.SIGINT)
        return None

    _hooked_build(monkeypatch, interrupt_at)
    with pytest.raises(TrainingInterrupted, match="epoch 2, step 7.*--resume"):
        train(TINY, "digits", tmp_path / "run", config)
    _, state = checkpoint.load_checkpoint(tmp_path / "run")
    assert (state["epoch"], state["step"]) == (1, 7)
    monkeypatch.undo()
    train(None, None, tmp_path / "run", resume=True)
    assert _same(_weights(tmp_path / "ref"), _weights(tmp_path / "run"))
    ref_rows = (tmp_path / "ref/metrics.jsonl").read_text().splitlines()
    rows = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    for a, b in zip(ref_rows, rows, strict=True):
        a, b = json.loads(a), json.loads(b)
        assert (a["train_loss"], a["val_acc"]) == (b["train_loss"], b["val_acc"])


def test_diagnose_every_stores_diagnostics(tmp_path, monkeypatch):
    seen = []

    def epoch_diagnostics(model, x, y):
        seen.append(tuple(x.shape))
        return {"batch": len(y)}

    fake = type(sys)("cnnlab.diagnose")
    fake.epoch_diagnostics = epoch_diagnostics
    monkeypatch.setitem(sys.modules, "cnnlab.diagnose", fake)
    train(TINY, "digits", tmp_path / "run", TrainConfig(**QUICK, diagnose_every=2))
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert ["diagnose" in r for r in rows] == [False, True, False]
    assert rows[1]["diagnose"] == {"batch": 64} and seen == [(64, 1, 8, 8)]


def test_nothing_is_pickled(tmp_path, monkeypatch):
    """Training, checkpointing and loading a run never call torch.save/torch.load/pickle."""
    from cnnlab.train.rundir import load_run

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    for target, name in [(torch, "save"), (torch, "load"), (pickle, "dump"), (pickle, "dumps")]:
        monkeypatch.setattr(target, name, refuse)
    train(TINY, "digits", tmp_path / "run", TrainConfig(**{**QUICK, "epochs": 1}))
    load_run(tmp_path / "run")


# --- SIGKILL and resume ------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import importlib, sys, time
    import torch
    torch.set_num_threads(1)
    from cnnlab.train import TrainConfig, train

    out, mode, spec, quick = sys.argv[1], sys.argv[2], eval(sys.argv[3]), eval(sys.argv[4])
    if mode == "slow":  # sleep in every forward so the parent can kill us mid-epoch
        build_module = importlib.import_module("cnnlab.train.inputs")
        original = build_module.build
        def slow_build(s):
            model = original(s)
            model.register_forward_pre_hook(lambda module, args: time.sleep(0.03))
            return model
        build_module.build = slow_build
    train(spec, "digits", out, TrainConfig(**quick), resume=(mode == "resume"))
    """
)


def test_sigkill_mid_epoch_then_resume_is_bitwise_exact(tmp_path):
    """Truth: the same run uninterrupted. A subprocess is SIGKILLed in epoch 2 (after the
    first checkpoint appears); `--resume` ends with bitwise the same model.safetensors."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    def child(out, mode):
        cmd = [sys.executable, str(script), str(tmp_path / out), mode, repr(TINY), repr(QUICK)]
        return subprocess.Popen(cmd, env={**os.environ, "PYTHONHASHSEED": "0"})

    ref = child("ref", "fast")
    victim = child("run", "slow")
    deadline = time.monotonic() + 120
    while not (tmp_path / "run/checkpoint.json").exists():
        assert victim.poll() is None and time.monotonic() < deadline, "child never checkpointed"
        time.sleep(0.02)
    time.sleep(0.2)  # well inside epoch 2 (20 steps × 30 ms)
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    _, state = checkpoint.load_checkpoint(tmp_path / "run")
    assert state["epoch"] == 1
    assert not (tmp_path / "run/model.safetensors").exists()
    assert child("run", "resume").wait() == 0
    assert ref.wait() == 0
    assert (tmp_path / "ref/model.safetensors").read_bytes() == (
        tmp_path / "run/model.safetensors"
    ).read_bytes()


def test_images_per_second_is_images_over_seconds_of_the_whole_run():
    """Truth: the arithmetic. A short fast epoch must not inflate the run's rate, as the mean
    of the epochs' rates does (1,000 img/s for 1 s and 100 img/s for 9 s is 190 img/s, not
    550)."""
    from cnnlab.train.rundir import images_per_second

    rows = [{"img_per_s": 1000.0, "seconds": 1.0}, {"img_per_s": 100.0, "seconds": 9.0}]
    assert images_per_second(rows) == pytest.approx((1000 + 900) / 10)
    assert images_per_second([]) == 0.0


def test_flips_follow_the_data_set_unless_asked_and_are_recorded(tmp_path):
    """A mirrored 2, 3, 4, 5 or 7 is no digit: digits train without flips (nor flip TTA),
    config.json records what was used, and an explicit flip wins."""
    config = TrainConfig(**{**QUICK, "epochs": 1, "flip": None})
    train(TINY, "digits", tmp_path / "auto", config)
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["flip"] is False
    train(TINY, "digits", tmp_path / "asked", dataclasses.replace(config, flip=True))
    assert json.loads((tmp_path / "asked" / "config.json").read_text())["flip"] is True


@pytest.mark.parametrize(
    ("data", "flip", "note"),
    [("digits", False, False), ("fashion-mnist", True, False), ("shapes", True, False),
     ("some/folder", True, True)],
)  # fmt: skip
def test_flip_default_per_data_set(data, flip, note):
    from cnnlab.train.inputs import resolve_flip

    config, notes = resolve_flip(TrainConfig(flip=None), data)
    assert config.flip is flip and bool(notes) is note
    assert resolve_flip(TrainConfig(flip=False), data) == (TrainConfig(flip=False), [])


def test_tta_without_flips_has_no_mirror_views():
    """Truth: Tensor.flip. flip=False keeps the identity and the shifted views only."""
    from cnnlab.train.evaluate import tta_views

    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    assert len(tta_views(x, 1)) == 10 and len(tta_views(x, 1, flip=False)) == 5
    assert torch.equal(tta_views(x, 0)[1], x.flip(-1))
    assert [torch.equal(v, x) for v in tta_views(x, 0, flip=False)] == [True]
