"""A resume given other data or another model than its run's is refused with the fix: leave
--data (or the spec, --preset, --model) out, for a run resumes on the data and the model its
files name (Fashion-MNIST given by the directory it was found in,
/usr/share/datasets/fashion-mnist for a run of 'fashion-mnist', was refused with no way on).
The truth: the same resume without them then runs."""

from __future__ import annotations

import pytest

from cnnlab.cli import main
from cnnlab.train import train
from tiny_nets import RESUME_CONFIG, tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def test_resume_on_other_data_says_to_leave_data_out(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_spec(), "digits", out, RESUME_CONFIG)
    assert main(["train", "--out", str(out), "--resume", "--data", "shapes"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"cnnlab train: error: cannot resume {out} on data 'shapes': it was trained on "
        "'digits'; resume without --data: a run resumes on the data it was trained on"
    )
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0


def test_resume_with_another_model_says_to_leave_it_out(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_spec(), "digits", out, RESUME_CONFIG)
    assert main(["train", "--preset", "lenet5", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"cnnlab train: error: cannot resume {out} with a different model than its spec.yaml; "
        "resume without a spec, --preset or --model: a run resumes the model it recorded"
    )
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
