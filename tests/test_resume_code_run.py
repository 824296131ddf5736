"""Resuming a run whose model is the user's code, with a spec hash that differs from the one
its checkpoint was saved with. Such a run has no spec.yaml, so "spec.yaml was edited" (the
message for a spec run) named a file that is not there: the checkpoint came from a run built
from a spec, or a spec.yaml was put in the directory since; each is said, with the code."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from cnnlab.errors import RunError
from cnnlab.train import train
from cnnlab.train.source import parse_model_ref
from tiny_nets import RESUME_CONFIG as CONFIG
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

NETS = textwrap.dedent(
    """
    from torch import nn

    def make_net(width=4, classes=10):
        return nn.Sequential(
            nn.Conv2d(1, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(width, classes),
        )
    """
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A spec run and a code run, each as a kill after its last checkpoint leaves it."""
    root = tmp_path_factory.mktemp("runs")
    nets = root / "nets.py"
    nets.write_text(NETS)
    train(tiny_spec(), "digits", root / "spec_run", CONFIG)  # NETS as a spec: its tensors fit
    train(parse_model_ref(f"{nets}:make_net"), "digits", root / "code_run", CONFIG)
    for name in ("spec_run", "code_run"):
        (root / name / "model.safetensors").unlink()
    return root, nets


def _copy(runs, tmp_path):
    root, nets = runs
    out = tmp_path / "code_run"
    shutil.copytree(root / "code_run", out)
    return root, nets, out


def test_a_spec_runs_checkpoint_in_a_code_run_is_called_another_runs(runs, tmp_path):
    root, nets, out = _copy(runs, tmp_path)
    for part in ("checkpoint.safetensors", "checkpoint.json"):
        shutil.copy(root / "spec_run" / part, out / part)
    with pytest.raises(RunError) as got:
        train(None, None, out, resume=True)
    text = str(got.value)
    assert "was saved by a run built from a spec" in text and "another run's" in text
    assert f"the code {nets}:make_net;" in text and "--force" in text
    assert "was edited" not in text


def test_a_spec_yaml_put_in_a_code_run_is_named_as_not_its_own(runs, tmp_path):
    _, nets, out = _copy(runs, tmp_path)
    (out / "spec.yaml").write_text("name: stray\n")
    with pytest.raises(RunError) as got:
        train(None, None, out, resume=True)
    text = str(got.value)
    assert f"{out / 'spec.yaml'} is not this run's" in text and f"{nets}:make_net" in text
    assert "remove it to resume" in text and "was edited" not in text


def test_the_code_runs_own_checkpoint_resumes(runs, tmp_path):
    _, _, out = _copy(runs, tmp_path)
    train(None, None, out, resume=True)
    assert (out / "model.safetensors").is_file()
