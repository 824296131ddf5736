"""A module with lazy layers (nn.LazyConv2d, nn.LazyBatchNorm2d, nn.LazyLinear) trains as
given to train(): its layers take their shapes from the data's, where train refused it and
asked the user for a dry run. Truth: the same module after PyTorch's own dry run (one forward
of a zero batch, in eval mode without gradient: no running statistics moved, no dropout mask
drawn) trains to bitwise the same state; a killed run of it resumes to the whole run's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import SpecError
from cnnlab.train import TrainConfig, train
from cnnlab.train import loop as loop_module
from cnnlab.train.checkpoint import load_weights

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = TrainConfig(epochs=1, batch_size=64, flip=False, tta=False, precision="fp32")


def lazy_net(dry_run: bool = False) -> nn.Sequential:
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.LazyConv2d(8, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(), nn.Dropout(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LazyLinear(10),
    )  # fmt: skip
    if dry_run:
        with torch.no_grad():
            net.eval()(torch.zeros(2, 1, 8, 8))
        net.train()
    return net


class Killed(BaseException):
    pass


def test_a_lazy_module_trains_as_after_its_dry_run():
    trained = train(lazy_net(), "digits", None, CONFIG)
    after_dry_run = train(lazy_net(dry_run=True), "digits", None, CONFIG)
    state, truth = trained["model"].state_dict(), after_dry_run["model"].state_dict()
    assert state.keys() == truth.keys()
    assert all(torch.equal(state[name], truth[name]) for name in truth)
    assert trained["test_acc"] == after_dry_run["test_acc"]


def test_a_killed_run_of_a_lazy_module_resumes_with_a_fresh_instance(tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    train(lazy_net(), "digits", ref, CONFIG)
    out, original, steps = tmp_path / "run", loop_module._step, {"n": 0}

    def killed_at_12(parts, position, *args):
        steps["n"] += 1
        if steps["n"] == 12:
            raise Killed
        return original(parts, position, *args)

    monkeypatch.setattr(loop_module, "_step", killed_at_12)
    with pytest.raises(Killed):
        train(lazy_net(), "digits", out, CONFIG, checkpoint_seconds=0)
    monkeypatch.undo()
    train(lazy_net(), "digits", out, CONFIG, resume=True)  # lazy again: shapes from the run
    resumed, whole = (load_weights(run / "model.safetensors") for run in (out, ref))
    assert all(torch.equal(resumed[name], whole[name]) for name in whole)


def test_a_lazy_module_that_cannot_run_on_the_images_is_one_error():
    net = nn.Sequential(nn.Flatten(), nn.Unflatten(1, (3, -1)), nn.Flatten(), nn.LazyLinear(10))
    with pytest.raises(SpecError, match=r"lazy layers .* cannot run on 1×8×8 images"):
        train(net, "digits", None, CONFIG)  # 64 pixels do not split in 3
