"""The trainer given a model as an nn.Module: it trains like its spec, bitwise, with or
without a run directory (out=None writes nothing), takes the data's shape (a misfit is one
error), and hands back the module holding the weights that were evaluated and saved."""

from __future__ import annotations

import json

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.train import ConfigError, TrainConfig, train
from test_train import QUICK, TINY, _same, _weights, build_module

pytestmark = pytest.mark.usefixtures("one_thread")

# --- a model given as a module; training without a run directory ----------------------


def test_a_module_trains_like_its_spec_and_out_none_writes_nothing(tmp_path, monkeypatch):
    """Independent truth: the spec's own run. The same architecture given as an nn.Module
    (built from the same seed) ends with bitwise the same weights, with or without a run
    directory, and out=None leaves no file anywhere."""
    config = TrainConfig(**{**QUICK, "epochs": 2})
    by_spec = train(TINY, "digits", tmp_path / "spec", config)
    monkeypatch.chdir(tmp_path / "spec")  # nothing may appear in the working directory
    before = sorted(p.name for p in tmp_path.rglob("*"))
    torch.manual_seed(config.seed)
    module = build_module.build(TINY)
    result = train(module, "digits", None, config)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert result["model"] is not None and result["out"] is None
    assert result["val_acc"] == by_spec["val_acc"] and result["epochs"] == 2
    assert _same(result["model"].state_dict(), _weights(tmp_path / "spec"))

    torch.manual_seed(config.seed)
    written = train(build_module.build(TINY), "digits", tmp_path / "module", config)
    assert _same(written["model"].state_dict(), _weights(tmp_path / "spec"))
    stored = json.loads((tmp_path / "module/config.json").read_text())
    assert stored["input_shape"] == [1, 8, 8] and stored["model"]["kind"] == "module"


def test_a_module_takes_the_datas_shape_and_a_misfit_is_one_error(tmp_path):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))  # digits: 1×8×8
    linear = dict(epochs=1, batch_size=64, lr=0.5, ema=None, translate=0, flip=False)
    result = train(net, "digits", None, TrainConfig(**linear, tta=False, precision="fp32"))
    assert result["val_acc"] > 0.9 and result["model"] is net  # softmax regression: 0.98
    wrong = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(50, 10))
    with pytest.raises(CnnlabError, match="Sequential cannot run on 1×8×8"):
        train(wrong, "digits", None, TrainConfig(**{**QUICK, "epochs": 1}))
    three = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    with pytest.raises(CnnlabError, match=r"outputs \(3,\).*10 classes"):
        train(three, "digits", None, TrainConfig(**{**QUICK, "epochs": 1}))
    with pytest.raises(ConfigError, match="resume and force need"):
        train(net, "digits", None, resume=True)


def test_a_module_passed_in_holds_the_weights_that_were_evaluated_and_saved(tmp_path):
    """With EMA on (the default) the saved weights are the average's: the module the caller
    passed in is handed back holding those, BatchNorm statistics included, in eval mode, not
    the raw last-step weights."""
    from safetensors.torch import load_file

    from cnnlab.train import TrainConfig, train

    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10),
    )  # fmt: skip
    result = train(net, "digits", tmp_path / "run", TrainConfig(epochs=1, tta=False))
    assert result["model"] is net and not net.training
    saved = load_file(tmp_path / "run" / "model.safetensors")
    mine = net.state_dict()
    assert saved.keys() == mine.keys()
    for name, tensor in saved.items():
        torch.testing.assert_close(mine[name].contiguous(), tensor, rtol=0, atol=0, msg=name)
