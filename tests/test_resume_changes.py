"""Resuming somewhere else: another world size, thread count, precision or torch changes the
arithmetic, so the run cannot end bit-identical to an uninterrupted one. Resuming on another
machine is legitimate, so cnnlab proceeds, and says so: a note naming both values (returned,
printed by the CLI) and a record in config.json's `resumes`, which does not count as an edit.
The truth: the values the first session recorded (checkpoint.json, config.json) and the ones
this session was given. The real two-rank-to-one-process case runs in test_ddp_faults.py."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train import checkpoint, train
from cnnlab.train import loop as loop_module
from cnnlab.train.rundir import load_run
from tiny_nets import RESUME_CONFIG as CONFIG
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A run as a kill after its last checkpoint leaves it (no model.safetensors yet)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    train(tiny_spec(), "digits", out, CONFIG)
    (out / "model.safetensors").unlink()
    return out


def _world_size_2(monkeypatch, out):
    tensors, state = checkpoint.load_checkpoint(out)
    checkpoint.save_checkpoint(out, tensors, {**state, "world_size": 2})


def _threads_2(monkeypatch, out):
    torch.set_num_threads(2)  # the module's one_thread fixture is set back by the test


def _bf16(monkeypatch, out):
    monkeypatch.setattr(loop_module, "autocast_dtype", lambda config, device: torch.bfloat16)


def _other_torch(monkeypatch, out):
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")


SAVED = "where the checkpoint was saved with"
CHANGES = {  # what changed: (how, the note's words)
    "world size": (_world_size_2, f"world size 1 {SAVED} 2"),
    "threads": (_threads_2, f"threads 2 {SAVED} 1"),
    "precision": (_bf16, f"precision bf16 {SAVED} fp32"),
    "torch": (_other_torch, f"torch 0.0.0-other {SAVED} {torch.__version__}"),
}


@pytest.mark.parametrize("name", CHANGES)
def test_a_resume_elsewhere_proceeds_and_says_what_changed(name, saved, tmp_path, monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(saved, out)
    change, words = CHANGES[name]
    change(monkeypatch, out)
    try:
        result = train(None, None, out, resume=True)
    finally:
        torch.set_num_threads(1)
    assert len(result["notes"]) == 1 and words in result["notes"][0]
    assert "differ from an uninterrupted run" in result["notes"][0]
    assert result["epochs"] == CONFIG.epochs and "test_acc" in result
    resumes = json.loads((out / "config.json").read_text())["resumes"]
    assert resumes == [{"epoch": CONFIG.epochs, "step": 0, "changed": result["notes"]}]
    load_run(out)  # the record does not count as an edit of config.json


def test_a_resume_in_the_same_setting_says_nothing(saved, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(saved, out)
    assert train(None, None, out, resume=True)["notes"] == []
    assert "resumes" not in json.loads((out / "config.json").read_text())


def test_the_cli_prints_the_note(saved, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(saved, out)
    _world_size_2(monkeypatch, out)
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if "world size" in line]
    assert printed == [
        "note: resumed with world size 1 where the checkpoint was saved with 2: the results "
        "will differ from an uninterrupted run's"
    ]


def test_a_step_the_new_world_size_cannot_reach_is_refused_naming_the_ranks(saved, tmp_path):
    """Another world size can give epochs of another length: a checkpoint mid-epoch beyond
    this session's last step cannot continue; the one line says why and with how many ranks."""
    out = tmp_path / "run"
    shutil.copytree(saved, out)
    tensors, state = checkpoint.load_checkpoint(out)
    checkpoint.save_checkpoint(out, tensors, {**state, "epoch": 1, "step": 99, "world_size": 3})
    with pytest.raises(RunError, match="saved with world size 3.*resume it with 3 ranks"):
        train(None, None, out, resume=True)


def test_a_second_resume_compares_with_the_session_that_saved_the_checkpoint(
    saved, tmp_path, monkeypatch
):
    """Trained on torch A, resumed (and checkpointed) on torch B, resumed again on B: no note,
    though config.json still names A: the checkpoint records its own session."""
    out = tmp_path / "run"
    shutil.copytree(saved, out)
    tensors, state = checkpoint.load_checkpoint(out)
    checkpoint.save_checkpoint(out, tensors, {**state, "torch": "0.0.0-other"})
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")
    assert json.loads((out / "config.json").read_text())["torch"] != "0.0.0-other"
    assert train(None, None, out, resume=True)["notes"] == []
