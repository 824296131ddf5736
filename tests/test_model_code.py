"""Models from the user's code through training: `cnnlab train --model file.py:factory`,
recorded in the run and rebuilt by every command that opens it. Truth: the same network
trained from a spec (bitwise equal weights), and the file's own hash."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, train
from cnnlab.train.rundir import load_run
from cnnlab.train.source import parse_model_ref

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
SPEC = {  # the same network as make_net(width=4), in the spec language
    "name": "same",
    "input": [1, 8, 8],
    "layers": [{"conv": {"filters": 4, "kernel": 3}}, "relu", "gap", {"linear": 10}],
}
QUICK = ["--epochs", "1", "--batch-size", "128", "--no-flip", "--no-tta", "--precision", "fp32"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return path


def test_cli_trains_code_records_it_and_every_open_rebuilds_it(nets, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", f"{nets}:make_net", "--model-arg", "width=6", "--data", "digits"]
    assert main([*argv, "--out", str(out), "--quiet", *QUICK]) == 0
    record = json.loads((out / "config.json").read_text())["model"]
    assert record["kind"] == "code" and record["args"] == {"width": "6"}
    assert not (out / "spec.yaml").exists()
    run = load_run(out)
    assert run.spec is None and run.name == "make_net"
    assert run.model[0].out_channels == 6  # rebuilt with the recorded argument
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] > 0

    nets.write_text(NETS.replace("nn.ReLU()", "nn.GELU()"))  # same shapes, other network
    with pytest.raises(RunError, match=f"{nets}.*has changed since the run was trained"):
        load_run(out)
    assert main(["eval", str(out)]) == 2


def test_code_trains_bitwise_as_the_same_spec(nets, tmp_path):
    config = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")
    # the same init: the spec's conv and linear are torch's own modules, built in order
    by_spec = train(SPEC, "digits", None, config)["model"].state_dict()
    by_code = train(parse_model_ref(f"{nets}:make_net"), "digits", None, config)["model"]
    assert [t.shape for t in by_code.state_dict().values()] == [t.shape for t in by_spec.values()]
    assert all(
        torch.equal(a, b)
        for a, b in zip(by_code.state_dict().values(), by_spec.values(), strict=True)
    )


def test_resume_rebuilds_the_code_and_refuses_another_model(nets, tmp_path):
    out = tmp_path / "run"
    source = parse_model_ref(f"{nets}:make_net", ["width=3"])
    config = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")
    train(source, "digits", out, config)
    (out / "model.safetensors").unlink()
    train(None, None, out, resume=True)  # from the record alone
    assert load_run(out).model[0].out_channels == 3
    (out / "model.safetensors").unlink()
    with pytest.raises(RunError, match="different model"):
        train(parse_model_ref(f"{nets}:make_net", ["width=5"]), None, out, resume=True)


def test_help_says_that_loading_code_runs_it(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "runs that code" in capsys.readouterr().out
