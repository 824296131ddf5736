"""The report's stages (activation maximisation's 'last layer of each stage', the linear
probes' layers) of a ResNet written as model zoos and CIFAR repositories write it: blocks
that end in `out += self.shortcut(x); return F.relu(out)`, grouped in nn.Sequential stages.
The last leaf of such a block is its shortcut's BatchNorm, a branch the stage's map is summed
from; the stage's map is the block's output. Truth: forward hooks on the model itself, the
map the next stage (or the head's pool) reads."""

from __future__ import annotations

import torch

from cnnlab.report import facts
from cnnlab.report.sources import Budget, Sources
from cnnlab.train.rundir import load_run
from tiny_nets import imported_run

NETS = """
import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class Net(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4),
                                  nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(Block(4, 4), Block(4, 4))
        self.layer2 = nn.Sequential(Block(4, 8, 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def make(classes=10):
    torch.manual_seed(0)
    return Net(classes)
"""


def _outputs_and_inputs(model, x, names):
    """{name: output} of the modules named, and {name: input} of the same modules."""
    out, inp = {}, {}
    hooks = []
    for name in names:
        module = model.get_submodule(name)

        def hook(m, args, y, name=name):
            inp[name] = args[0].detach().clone()
            out[name] = y.detach().clone()

        hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return out, inp


def test_each_stage_is_the_map_the_next_stage_reads(tmp_path):
    path = imported_run(tmp_path, NETS, data="digits")
    run = load_run(path)
    src = Sources(path, run, None, Budget())
    stages = src.stages
    assert len(stages) == 2  # 8×8, then 4×4
    _, x, _ = src.test
    run.model.eval()
    # what each resolution hands on: layer2's first conv and shortcut read the 8×8 map,
    # the head's pool the 4×4 one
    readers = ["layer2.0.conv1", "avgpool"]
    out, inp = _outputs_and_inputs(run.model, x[:4], stages + readers)
    for stage, reader in zip(stages, readers, strict=True):
        assert torch.equal(out[stage], inp[reader]), (stage, reader)
    # the shortcut's BatchNorm, the old pick at 4×4, is not what the head reads
    out, inp = _outputs_and_inputs(run.model, x[:4], ["layer2.0.shortcut.1", "avgpool"])
    assert not torch.equal(out["layer2.0.shortcut.1"], inp["avgpool"])


def test_the_probes_and_activation_maximisation_read_those_stages(tmp_path):
    path = imported_run(tmp_path, NETS, data="digits")
    src = Sources(path, load_run(path), None, Budget(probe_train=64, probe_test=32, actmax_steps=2,
                                                    actmax_channels=1))  # fmt: skip
    labels = [src.label(name) for name in src.stages]
    assert list(facts._probes(src).accuracy) == ["input", *labels]
    tiles = facts._actmax(src)
    assert [t.layer for t in tiles] == labels[-Budget().actmax_stages :]
