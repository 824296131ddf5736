"""A finished run given again as --out is told so: --resume there would only evaluate it
again (its weights are written at the end), so the way on is another --out or --force; a run
stopped before its end is still told to --resume. The truth: what --resume does on each."""

from __future__ import annotations

import pytest

from cnnlab.errors import RunError
from cnnlab.train import train
from tiny_nets import RESUME_CONFIG, tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def test_a_finished_run_as_out_is_not_told_to_resume(tmp_path):
    out = tmp_path / "run"
    train(tiny_spec(), "digits", out, RESUME_CONFIG)
    with pytest.raises(RunError) as refused:
        train(tiny_spec(), "digits", out, RESUME_CONFIG)
    assert str(refused.value) == (
        f"{out} already exists and its training is finished (--resume would only evaluate it "
        "again): choose another --out, or --force to start again (--force deletes its run "
        "files)"
    )
    resumed = train(None, None, out, resume=True)
    assert any("nothing was trained" in note for note in resumed["notes"])


def test_a_stopped_run_as_out_is_told_to_resume(tmp_path):
    out = tmp_path / "run"
    train(tiny_spec(), "digits", out, RESUME_CONFIG)
    (out / "model.safetensors").unlink()  # as a kill after the last checkpoint leaves it
    with pytest.raises(RunError, match="already exists; pass --resume to continue that run"):
        train(tiny_spec(), "digits", out, RESUME_CONFIG)
    resumed = train(None, None, out, resume=True)
    assert not any("nothing was trained" in note for note in resumed["notes"])


NET = """
from torch import nn

def make_net():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
"""


def test_an_imported_run_as_out_is_not_told_to_resume(tmp_path):
    """An imported run has its weights but no training: --resume there is refused."""
    from safetensors.torch import save_file

    from cnnlab.train.importing import import_run
    from cnnlab.train.source import parse_model_ref

    (tmp_path / "nets.py").write_text(NET)
    source = parse_model_ref(f"{tmp_path / 'nets.py'}:make_net", [])
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.build().state_dict().items()}, weights)
    out = tmp_path / "run"
    import_run(source, weights, out, "digits")
    with pytest.raises(RunError) as refused:
        train(tiny_spec(), "digits", out, RESUME_CONFIG)
    assert "--resume" not in str(refused.value), refused.value
    assert "cnnlab import" in str(refused.value)
    with pytest.raises(RunError, match="made by cnnlab import"):  # what --resume says there
        train(None, None, out, resume=True)
