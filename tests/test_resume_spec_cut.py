"""train --resume of an unfinished run whose spec.yaml was cut short, broken or emptied
since the run started is told as a changed file to restore, as load_run tells it after
training; it gave the spec parser's advice ('the spec has no input; add e.g. input: [1, 28,
28]'), which has the user rebuild the run's spec by hand. Truth: the file's original bytes,
which resume the run to its end once put back."""

from __future__ import annotations

import shutil

import pytest

from cnnlab.cli import main
from cnnlab.train import TrainConfig, train
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = TrainConfig(epochs=2, batch_size=256, precision="fp32", bn_recalibrate=0, tta=False)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run stopped after its checkpoints, before its end (no model.safetensors)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_spec(10), "digits", out, CONFIG)
    (out / "model.safetensors").unlink()
    return out


CUTS = {
    "cut to 50 bytes": lambda text: text[:50],
    "cut to its first line": lambda text: text.splitlines(keepends=True)[0],  # no input
    "broken YAML": lambda text: text + "garbage: [\n",
    "emptied": lambda text: "",
}


@pytest.mark.parametrize("cut", CUTS, ids=list(CUTS))
def test_a_spec_cut_since_the_start_is_told_as_changed(stopped, tmp_path, capsys, cut):
    out = tmp_path / "run"
    shutil.copytree(stopped, out)
    spec = out / "spec.yaml"
    original = spec.read_bytes()
    spec.write_text(CUTS[cut](original.decode()))
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "spec.yaml was changed since the run started" in err and "restore it" in err
    assert "add e.g." not in err and "Traceback" not in err
    spec.write_bytes(original)  # the advice followed
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 0
    assert (out / "model.safetensors").is_file()
