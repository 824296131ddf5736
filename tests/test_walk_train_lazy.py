"""A run of a module with lazy layers (nn.LazyConv2d, nn.LazyBatchNorm2d, nn.LazyLinear),
trained after the one dry run `train` asks for, reopens with a fresh instance built as in
training, lazy again: load_run gives its layers their shapes from the run's input shape
before it compares and loads the weights (torch refused to read a placeholder's shape)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import SpecError
from cnnlab.train import TrainConfig, load_run, train
from cnnlab.train.checkpoint import load_weights

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = TrainConfig(epochs=1, batch_size=64, flip=False, tta=False, precision="fp32")


def lazy_net() -> nn.Sequential:
    return nn.Sequential(
        nn.LazyConv2d(8, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(), nn.Dropout(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LazyLinear(10),
    )  # fmt: skip


@pytest.fixture(scope="module")
def lazy_run(tmp_path_factory):
    torch.manual_seed(3)
    net = lazy_net()
    net(torch.zeros(2, 1, 8, 8))  # the dry run train() asks of a lazy module
    out = tmp_path_factory.mktemp("lazy") / "run"
    result = train(net, "digits", out, CONFIG)
    return out, net, result


def test_a_fresh_lazy_instance_reopens_the_run_with_its_weights(lazy_run):
    """Truth: the module trained in memory, and a test accuracy computed here from its own
    forward on the test images normalized with the run's statistics."""
    out, net, result = lazy_run
    saved = load_weights(out / "model.safetensors")
    torch.manual_seed(9)  # other placeholder weights than training's: all are overwritten
    run = load_run(out, model=lazy_net())
    assert saved.keys() == net.state_dict().keys() == run.model.state_dict().keys()
    for name, tensor in net.state_dict().items():
        assert torch.equal(saved[name], tensor), name
        assert torch.equal(run.model.state_dict()[name], tensor), name
    test = run.dataset("test")
    mean = torch.tensor(run.mean).view(1, -1, 1, 1)
    std = torch.tensor(run.std).view(1, -1, 1, 1)
    with torch.no_grad():
        right = net.eval()((test.images / 255 - mean) / std).argmax(1) == test.labels
    assert result["test_acc"] == int(right.sum()) / len(right)
    x = run.preprocess(test.images)
    with torch.no_grad():  # the trained module is channels-last: another kernel's rounding
        torch.testing.assert_close(run.model(x), net(x))


def test_a_lazy_instance_that_cannot_run_on_the_runs_images_is_one_error(lazy_run):
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.LazyLinear(10)

        def forward(self, x):
            return self.fc(x.view(len(x), 3, -1).mean(1))  # 64 pixels do not split in 3

    with pytest.raises(SpecError, match=r"lazy layers .* cannot run on 1×8×8 images: shape"):
        load_run(lazy_run[0], model=Broken())
