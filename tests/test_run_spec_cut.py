"""A run's spec.yaml cut short or broken after training is told as edited after training
(restore it), as an edit that still parses is; it was told the parse error's advice ('the
spec has no input; add e.g. input: [1, 28, 28]'), which has the user rebuild the file by
hand. Truth: the file's original bytes, which open again once restored."""

from __future__ import annotations

import shutil

import pytest

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, train
from cnnlab.train.rundir import load_run
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = TrainConfig(epochs=1, batch_size=256, precision="fp32", bn_recalibrate=0, tta=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_spec(10), "digits", out, CONFIG)
    return out


CUTS = {
    "cut short": lambda text: text[:20],
    "broken YAML": lambda text: text + "garbage: [\n",
    "emptied": lambda text: "",
}


@pytest.mark.parametrize("cut", CUTS, ids=list(CUTS))
def test_a_spec_cut_after_training_is_told_as_edited(run_dir, tmp_path, capsys, cut):
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    spec = out / "spec.yaml"
    original = spec.read_bytes()
    spec.write_text(CUTS[cut](original.decode()))
    with pytest.raises(RunError, match="spec.yaml was edited after training"):
        load_run(out)
    assert main(["eval", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "restore it" in err and "add e.g." not in err
    spec.write_bytes(original)  # the advice followed
    assert load_run(out).classes == load_run(run_dir).classes
