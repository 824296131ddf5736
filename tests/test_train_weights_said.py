"""The final table of `cnnlab train` says which weights were evaluated and saved: the EMA's
(the default, --ema 0.99) or, with --ema none, the last step's. Its accuracy rows gave no
hint, while the training accuracy beside them is the live weights'. The truth: the tensors
of model.safetensors against the checkpoint's `ema.*` and `model.*` copies."""

from __future__ import annotations

import json

import pytest
import torch

from cnnlab.cli import main
from cnnlab.train import checkpoint
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def _train(tmp_path, capsys, *options: str):
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec()))
    out = tmp_path / "run"
    argv = ["train", str(spec), "--data", "digits", "--epochs", "1", "--precision", "fp32"]
    assert main([*argv, "--out", str(out), "--quiet", *options]) == 0
    saved = checkpoint.load_weights(out / "model.safetensors")
    tensors, _ = checkpoint.load_checkpoint(out)
    return capsys.readouterr().out, saved, tensors


def _same(saved, tensors, prefix: str) -> bool:
    return all(torch.equal(v, tensors[f"{prefix}.{k}"]) for k, v in saved.items())


def test_the_table_names_the_ema_when_the_ema_is_saved(tmp_path, capsys):
    out, saved, tensors = _train(tmp_path, capsys)
    assert _same(saved, tensors, "ema") and not _same(saved, tensors, "model")
    assert "weights evaluated and saved │ EMA of the weights (decay 0.99)" in out


def test_the_table_names_the_last_step_without_ema(tmp_path, capsys):
    out, saved, tensors = _train(tmp_path, capsys, "--ema", "none")
    assert _same(saved, tensors, "model")
    assert "weights evaluated and saved │ the last step's (no EMA)" in out
