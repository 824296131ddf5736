"""`--model file.py:make` whose factory returns lazy layers (nn.LazyConv2d,
nn.LazyBatchNorm2d, nn.LazyLinear) works through every command: train gives them the data's
shape as train(module) does, a reopened run its recorded shape, summary and import their
--input or the data's. Truth: plain PyTorch, the same model given its shapes by hand (one
forward of a zero batch) and the run's model.safetensors loaded into it; train(make()) in
Python with the same seed; the straight run for a resumed one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from cnnlab.cli import main
from cnnlab.data import load_splits
from cnnlab.train import TrainConfig, load_run, train
from cnnlab.train import loop as loop_module

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

NETS = """
from torch import nn


def make(width=8):
    return nn.Sequential(
        nn.LazyConv2d(width, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(), nn.Dropout(0.1),
        nn.Flatten(), nn.LazyLinear(32), nn.ReLU(), nn.Linear(32, 10),
    )


def broken():  # 64 pixels do not split in 3: its dry forward fails on digits' 1×8×8
    return nn.Sequential(nn.Flatten(), nn.Unflatten(1, (3, -1)), nn.Flatten(), nn.LazyLinear(10))
"""
SEED = 5
OPTIONS = ["--data", "digits", "--epochs", "3", "--batch-size", "32", "--optimizer", "adamw",
           "--lr", "3e-3", "--no-tta", "--seed", str(SEED), "--quiet"]  # fmt: skip
CONFIG = TrainConfig(epochs=3, batch_size=32, optimizer="adamw", lr=3e-3, tta=False, seed=SEED)


def _make() -> nn.Module:
    """The factory of NETS, run here."""
    space: dict = {}
    exec(NETS, space)
    return space["make"]()


def _by_hand(weights) -> nn.Module:
    """NETS' model given its shapes by PyTorch's own dry run, then `weights` loaded."""
    net = _make().eval()
    with torch.no_grad():
        net(torch.zeros(1, 1, 8, 8))
    net.load_state_dict(load_file(weights))
    return net


def _logits(net: nn.Module, images: torch.Tensor, config: dict, autocast) -> torch.Tensor:
    """The logits by hand, in the run's precision (bf16 autocast where training ran in it, as
    the commands evaluate it: the machine decides)."""
    mean = torch.tensor(config["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(config["std"]).view(1, -1, 1, 1)
    with torch.no_grad(), torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
        return net((images.float() / 255 - mean) / std).float()


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    path = tmp_path_factory.mktemp("code") / "lazynets.py"
    path.write_text(NETS)
    return path


@pytest.fixture(scope="module")
def run(nets, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lazy"
    assert main(["train", "--model", f"{nets}:make", *OPTIONS, "--out", str(out)]) == 0
    return out


def test_train_gives_the_factory_model_its_shapes_as_train_of_a_module(run, tmp_path):
    torch.manual_seed(SEED)  # the CLI seeds, then calls the factory
    train(_make(), "digits", tmp_path / "py", CONFIG)
    cli, python = (load_file(r / "model.safetensors") for r in (run, tmp_path / "py"))
    assert cli.keys() == python.keys() and cli["5.weight"].shape == (32, 8 * 8 * 8)
    assert all(torch.equal(cli[name], python[name]) for name in python)


def test_every_command_reopens_the_run_with_its_recorded_shape(run, tmp_path, capsys):
    config = json.loads((run / "config.json").read_text())
    net, test, opened = _by_hand(run / "model.safetensors"), load_splits("digits")[1], load_run(run)
    logits = _logits(net, test.images, config, opened.autocast)
    truth = (logits.argmax(1) == test.labels).float().mean().item()
    assert truth > 0.5  # it learned: the comparison below is not of two guessers
    assert all(torch.equal(opened.model.state_dict()[k], v) for k, v in net.state_dict().items())

    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    # in bf16 the batches' sizes and layout may turn an image or two that sits on a tie
    near = 2 / len(test.labels) if opened.autocast else 1e-9
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(truth, abs=near)
    image = tmp_path / "digit.png"
    Image.fromarray(test.images[0, 0].numpy().astype(np.uint8)).save(image)
    assert main(["predict", str(run), str(image), "--json", "--top", "1"]) == 0
    said = json.dumps(json.loads(capsys.readouterr().out))
    assert repr(config["classes"][logits[0].argmax().item()]) in said.replace('"', "'")
    for command in (
        ["diagnose", str(run), "--json", "--limit", "64"],
        ["probe", str(run), "--json", "--epochs", "1"],
        ["explain", str(run), str(image), "--out", str(tmp_path / "explained")],
        ["report", str(run), "--out", str(tmp_path / "report.html")],
    ):
        assert main(command) == 0, command
    from fastapi.testclient import TestClient

    from cnnlab.explorer import create_app

    answer = TestClient(create_app(run)).post("/api/predict", data={"sample": 0, "top": 10})
    assert answer.status_code == 200, answer.text
    top = answer.json()["top"][0]["probability"]
    assert top == pytest.approx(
        logits.softmax(1)[0].max().item(), abs=1e-2 if near > 1e-9 else 1e-5
    )


class Killed(BaseException):
    pass


def test_a_killed_run_resumes_to_the_straight_run(run, nets, tmp_path, monkeypatch):
    out, original, steps = tmp_path / "run", loop_module._step, {"n": 0}

    def killed_at_20(parts, position, *args):
        steps["n"] += 1
        if steps["n"] == 20:
            raise Killed
        return original(parts, position, *args)

    monkeypatch.setattr(loop_module, "_step", killed_at_20)
    command = ["train", "--model", f"{nets}:make", *OPTIONS, "--out", str(out)]
    with pytest.raises(Killed):
        main([*command, "--checkpoint-seconds", "0"])
    monkeypatch.undo()
    assert main([*command, "--resume"]) == 0
    resumed, whole = (load_file(r / "model.safetensors") for r in (out, run))
    assert all(torch.equal(resumed[name], whole[name]) for name in whole)


def test_summary_of_the_factory_counts_the_materialized_model(nets, capsys):
    capsys.readouterr()
    assert main(["summary", "--model", f"{nets}:make", "--input", "1,8,8", "--json"]) == 0
    net = _make()
    net(torch.zeros(1, 1, 8, 8))
    total = sum(p.numel() for p in net.parameters())
    assert json.loads(capsys.readouterr().out)["total_params"] == total


@pytest.mark.parametrize("given", [[], ["--input", "1,8,8"]], ids=["data-shape", "input"])
def test_import_gives_the_factory_model_its_shapes(run, nets, tmp_path, given):
    out = tmp_path / "imported"
    weights = run / "model.safetensors"
    command = ["import", "--model", f"{nets}:make", "--weights", str(weights)]
    assert main([*command, "--data", "digits", *given, "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    test = load_splits("digits")[1]
    autocast = load_run(out).autocast
    logits = _logits(_by_hand(weights), test.images, config, autocast)
    truth = (logits.argmax(1) == test.labels).float().mean().item()
    evaluation = json.loads((out / "evaluation.json").read_text())
    near = 2 / len(test.labels) if autocast else 1e-9  # (as for eval, above)
    assert evaluation["accuracy"] == pytest.approx(truth, abs=near)


def test_a_factory_whose_dry_forward_fails_is_one_line(nets, run, tmp_path, capsys):
    weights = str(run / "model.safetensors")
    for command in (
        ["train", "--model", f"{nets}:broken", *OPTIONS, "--out", str(tmp_path / "t")],
        ["summary", "--model", f"{nets}:broken", "--input", "1,8,8"],
        ["import", "--model", f"{nets}:broken", "--weights", weights, "--data", "digits",
         "--out", str(tmp_path / "i")],
    ):  # fmt: skip
        capsys.readouterr()
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert "lazy layers" in err and "cannot run on 1×8×8 images" in err, err
