"""An interrupted `cnnlab demo` names the command that resumes its run: it said 'continue
with --resume', and `cnnlab demo --resume` is refused (demo has no such option)."""

from __future__ import annotations

import cnnlab.cli.demo as demo
from cnnlab.cli import main
from cnnlab.train import TrainingInterrupted

MESSAGE = "interrupted at epoch 1, step 7; checkpoint saved in {out}: continue with --resume"


def test_the_interrupted_demo_names_train_resume(monkeypatch, capsys, tmp_path):
    out = tmp_path / "demo"

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted(MESSAGE.format(out=out))

    monkeypatch.setattr(demo, "run_training", interrupted)
    assert main(["demo", "--data", "digits", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"`cnnlab train --out {out} --resume`, then `cnnlab report {out}`" in err, err
    assert err.count("\n") == 1, err


def test_the_advice_followed_is_a_command_demo_and_train_accept(capsys):
    advice = demo.resume_advice("interrupted; no checkpoint yet", demo.Path("runs/demo"))
    assert advice.endswith(
        "continue with `cnnlab train --out runs/demo --resume`, then `cnnlab report runs/demo`"
    )
