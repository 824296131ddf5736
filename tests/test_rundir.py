"""The run directory under bad input: every edited or corrupt file, a second writer, a
directory that is not a run, an --out that cannot be written, a checkpoint that does not fit.
Each must be one line naming the file (a RunError; exit 2 from the CLI), never a traceback,
never a silently wrong result. Truth: the unedited run, and the files left untouched."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from cnnlab.cli import main
from cnnlab.errors import ConfigError, DataError, RunError, TrainingDiverged
from cnnlab.train import TrainConfig, checkpoint, train
from cnnlab.train import inputs as inputs_module
from cnnlab.train.rundir import LOCK, RunDir, load_run

TINY = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [{"conv": {"filters": 4, "kernel": 3}}, "relu", "gap", {"linear": 10}],
}
QUICK = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(TINY, "digits", out, QUICK)
    return out


def _copy(run_dir, tmp_path):
    other = tmp_path / "copy"
    shutil.copytree(run_dir, other)
    return other


def _one_line(capsys, code: int, argv: list[str]) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# --- config.json and spec.yaml edited after training --------------------------------------

EDITS = {
    "too few classes": (lambda c: c.update(classes=c["classes"][:9]), "9 classes"),
    "classes null": (lambda c: c.update(classes=None), "classes must be a list"),
    "one class": (lambda c: c.update(classes=["a"]), "at least two"),
    "std negative": (lambda c: c.update(std=[-0.5]), "std must be 0 or more"),
    "std null": (lambda c: c.update(std=None), "std must be 1 finite"),
    "mean too long": (lambda c: c.update(mean=[0.1, 0.2]), "mean must be 1 finite"),
    "input_shape null": (lambda c: c.update(input_shape=None), "input_shape"),
    "epochs text": (lambda c: c.update(epochs="x"), "epochs"),
    "lr negative": (lambda c: c.update(lr=-1), "lr"),
    "data a number": (lambda c: c.update(data=3), "data"),
    "missing mean": (lambda c: c.pop("mean"), "lacks mean"),
    "learning rate changed": (lambda c: c.update(lr=0.05), "config.json was edited"),
}


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_an_edited_config_is_one_line_naming_it(run_dir, tmp_path, capsys, edit):
    change, message = EDITS[edit]
    other = _copy(run_dir, tmp_path)
    config = json.loads((other / "config.json").read_text())
    change(config)
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match=message):
        load_run(other)
    assert "config.json" in _one_line(capsys, 2, ["eval", str(other)])


@pytest.mark.parametrize("text", ["null", "[1, 2]", "{not json"])
def test_config_that_is_no_object(run_dir, tmp_path, text):
    other = _copy(run_dir, tmp_path)
    (other / "config.json").write_text(text)
    with pytest.raises(RunError, match="config.json"):
        load_run(other)


def test_a_spec_edited_after_training_is_caught_though_the_weights_fit(run_dir, tmp_path):
    """relu -> gelu keeps every tensor's shape: only the stored hash can tell."""
    other = _copy(run_dir, tmp_path)
    spec = other / "spec.yaml"
    spec.write_text(spec.read_text().replace("relu", "gelu"))
    with pytest.raises(RunError, match="spec.yaml was edited after training"):
        load_run(other)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nan_or_inf_weights_are_refused_naming_the_file(run_dir, tmp_path, capsys, value):
    other = _copy(run_dir, tmp_path)
    state = load_file(other / "model.safetensors")
    name = next(iter(state))
    state[name] = state[name].clone().fill_(value)
    save_file(state, other / "model.safetensors")
    with pytest.raises(RunError, match=f"model.safetensors: tensor {name} holds NaN"):
        load_run(other)
    _one_line(capsys, 2, ["predict", str(other), str(other / "config.json")])


# --- checkpoints that do not fit ------------------------------------------------------------


def _resumable(tmp_path):
    out = tmp_path / "run"
    train(TINY, "digits", out, TrainConfig(**{**QUICK.to_dict(), "epochs": 2}))
    (out / "model.safetensors").unlink()  # as if killed after epoch 2's checkpoint
    return out


def _edit_tensors(out, change):
    tensors, state = checkpoint.load_checkpoint(out)
    change(tensors, state)
    checkpoint.save_checkpoint(out, tensors, state)


BAD_CHECKPOINTS = {
    "size mismatch": (
        lambda t, s: t.update({"model.0.weight": torch.zeros(5, 1, 3, 3)}),
        "tensor 0.weight is 4×1×3×3 in the model but 5×1×3×3",
    ),
    "missing tensor": (lambda t, s: t.pop("model.0.bias"), "missing from the file: 0.bias"),
    "missing RNG state": (lambda t, s: s.pop("rng"), "lacks rng"),
    "broken RNG state": (lambda t, s: s.update(rng={"torch": "AAAA"}), "RNG state"),
    "epoch 99 of 2": (lambda t, s: s.update(epoch=99), "claims epoch 99"),
    "config edited since": (
        lambda t, s: s["hashes"].update(config_sha256="0" * 64),
        "config.json was edited since checkpoint.safetensors",
    ),
    "NaN tensor": (
        lambda t, s: t.update({"model.0.weight": torch.full((4, 1, 3, 3), math.nan)}),
        "holds NaN",
    ),
    "not safetensors": (None, "not a readable safetensors file"),
}


@pytest.mark.parametrize("case", BAD_CHECKPOINTS, ids=list(BAD_CHECKPOINTS))
def test_a_checkpoint_that_does_not_fit_is_one_line(tmp_path, capsys, case):
    out = _resumable(tmp_path)
    change, message = BAD_CHECKPOINTS[case]
    if change is None:
        (out / "checkpoint.safetensors").write_bytes(b"\x08" + bytes(200))
    else:
        _edit_tensors(out, change)
    with pytest.raises(RunError, match=message) as error:
        train(None, None, out, resume=True)
    assert "checkpoint.safetensors" in str(error.value)  # the file, named
    assert "last good" not in str(error.value)
    assert "--force" in str(error.value)  # and what to do
    _one_line(capsys, 2, ["train", "--resume", "--out", str(out), "--quiet"])


# --- who may write where --------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_pid(tmp_path):
    out = tmp_path / "run"
    holder = RunDir.open(out, resume=False, force=False)
    try:
        with pytest.raises(RunError, match=f"another cnnlab process \\(PID {os.getpid()}\\)"):
            train(TINY, "digits", out, QUICK, force=True)
    finally:
        holder.close()
    train(TINY, "digits", out, QUICK, force=True)  # free again once the holder is gone
    assert (out / LOCK).is_file() and load_run(out).classes


def test_a_second_writer_in_another_process(tmp_path):
    """flock is per process here too: a child holding the lock blocks this process."""
    import subprocess
    import sys

    out = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from cnnlab.train.rundir import RunDir
            run = RunDir.open({str(out)!r}, resume=False, force=False)
            print("locked", flush=True)
            sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match=f"PID {child.pid}"):
            train(TINY, "digits", out, QUICK, force=True)
    finally:
        child.communicate("\n", timeout=30)


def test_a_directory_that_is_not_a_run_is_never_emptied(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "figures").mkdir(parents=True)
    files = {"config.json": '{"theme": "dark"}', "report.html": "<p>", "figures/a.png": "x"}
    for name, text in files.items():
        (mine / name).write_text(text)
    for argv in (
        ["train", "--preset", "lenet5", "--data", "digits", "--out", str(mine), "--force"],
        ["demo", "--out", str(mine), "--data", "digits", "--epochs", "1"],
    ):
        assert "is not a cnnlab run" in _one_line(capsys, 2, argv)
    assert {n: (mine / n).read_text() for n in files} == files


def test_a_users_spec_alone_is_not_taken_for_a_killed_runs(tmp_path, capsys):
    """spec.yaml without config.json is a killed run's first write only beside cnnlab's lock;
    a directory holding just the user's own spec.yaml is theirs, and is refused."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "spec.yaml").write_text("# my spec\n")
    argv = ["train", "--preset", "lenet5", "--data", "digits", "--out", str(mine)]
    assert "is not a cnnlab run" in _one_line(capsys, 2, argv)
    assert (mine / "spec.yaml").read_text() == "# my spec\n"


def test_demo_refuses_a_users_directory_before_announcing_training(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(mine), "--data", "digits", "--epochs", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "is not a cnnlab run" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_force_removes_temp_files_of_a_killed_run_and_keeps_the_users(run_dir, tmp_path):
    other = _copy(run_dir, tmp_path)
    (other / ".model.safetensors.tmp-4242").write_bytes(b"half")
    (other / "notes.txt").write_text("mine")
    train(TINY, "digits", other, QUICK, force=True)
    assert not list(other.glob(".*.tmp-*")) and (other / "notes.txt").read_text() == "mine"


def test_force_over_an_imported_run_leaves_no_evaluation_of_the_old_weights(run_dir, tmp_path):
    """`cnnlab import` writes evaluation.json; a run trained over it with --force must not
    keep that record of weights it replaced."""
    other = _copy(run_dir, tmp_path)
    (other / "evaluation.json").write_text('{"test_acc": 0.99}')
    train(TINY, "digits", other, QUICK, force=True)
    assert not (other / "evaluation.json").exists() and (other / "model.safetensors").is_file()


UNWRITABLE = {
    "a path under a file": lambda tmp: tmp / "file.txt" / "run",
    "a 300-character name": lambda tmp: tmp / ("r" * 300),
    "a file": lambda tmp: tmp / "file.txt",
}


@pytest.mark.parametrize("case", UNWRITABLE, ids=list(UNWRITABLE))
def test_an_unwritable_out_fails_before_any_data_is_loaded(tmp_path, monkeypatch, capsys, case):
    (tmp_path / "file.txt").write_text("x")

    def no_data(*args, **kwargs):
        raise AssertionError("data loaded before --out was checked")

    monkeypatch.setattr(inputs_module, "load_splits", no_data)
    out = UNWRITABLE[case](tmp_path)
    with pytest.raises(RunError, match="--out"):
        train(TINY, "digits", out, QUICK)
    _one_line(capsys, 2, ["train", "--preset", "lenet5", "--out", str(out), "--quiet"])


def test_a_refused_new_run_leaves_no_directory_behind(tmp_path):
    with pytest.raises(ConfigError):
        train(TINY, "digits", tmp_path / "new", TrainConfig(batch_size=100_000))
    assert not (tmp_path / "new").exists()


# --- options, divergence, data ----------------------------------------------------------------

BAD_OPTIONS = {
    "huge seed": ["--seed", "99999999999999999999999"],
    "negative seed": ["--seed", "-1"],
    "infinite weight decay": ["--weight-decay", "inf"],
    "NaN lr": ["--lr", "nan"],
    "infinite momentum": ["--momentum", "inf"],
    "zero eval batch": ["--eval-batch-size", "0"],
    "model-arg without model": ["--model-arg", "width=3"],
    "missing model file": ["--model", "nowhere.py:make"],
}


@pytest.mark.parametrize("case", BAD_OPTIONS, ids=list(BAD_OPTIONS))
def test_bad_training_options_are_one_line_exit_2(tmp_path, capsys, case):
    argv = ["train", "--data", "digits", "--out", str(tmp_path / "r"), "--quiet"]
    if "--model" not in BAD_OPTIONS[case]:
        argv += ["--preset", "lenet5"]
    _one_line(capsys, 2, argv + BAD_OPTIONS[case])
    assert not (tmp_path / "r").exists()


def test_a_runaway_loss_stops_the_run_and_names_the_knob(tmp_path, capsys):
    """--lr 100: the loss climbs far above its start (to 1e16 unchecked); exit 3, not 0."""
    with pytest.raises(TrainingDiverged, match=r"climbed to .*\(lr ([0-9.]+)\).* --lr") as caught:
        train(TINY, "digits", None, TrainConfig(**{**QUICK.to_dict(), "lr": 100.0}))
    message = str(caught.value)
    ran_away_at = float(re.search(r"\(lr ([0-9.e+-]+)\)", message).group(1))
    advised = float(re.search(r"--force --lr ([0-9.e+-]+)", message).group(1))
    assert advised == pytest.approx(min(ran_away_at, 100.0) / 10, rel=1e-2)
    argv = ["train", "--preset", "lenet5", "--data", "digits", "--out", str(tmp_path / "r")]
    err = _one_line(capsys, 3, [*argv, "--lr", "100", "--epochs", "2", "--quiet"])
    assert "diverged" in err and "--lr" in err


def test_one_class_training_data_is_refused(tmp_path):
    from cnnlab.data import load_dataset

    digits = load_dataset("digits", "train")
    zeros = digits.subset(torch.nonzero(digits.labels == 0).flatten())
    one = type(digits)(zeros.images, zeros.labels, ("0",), "zeros")
    with pytest.raises(DataError, match="only one class"):
        train(TINY, one, None, QUICK)


def test_ddp_timeout_is_set_from_the_environment(monkeypatch):
    from cnnlab.train import distributed

    monkeypatch.setenv("CNNLAB_DDP_TIMEOUT", "42")
    assert distributed.timeout_seconds() == 42
    monkeypatch.setenv("CNNLAB_DDP_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="CNNLAB_DDP_TIMEOUT"):
        distributed.timeout_seconds()
