"""The report names each call of a module called several times by its label, as the summary,
explain and the explorer do: one ReLU module shared by three conv blocks ends them as `relu`,
`relu #2`, `relu #3`, and each section (feature maps, stages, activation maximisation,
probes, ERF) reads that call's data, not the module's first or last call's. Truth: a plain
forward hook counting the ReLU's calls, the receptive-field formula, and explain at each
label."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab import explain
from cnnlab.explorer import create_app
from cnnlab.report import facts, show
from cnnlab.report.sources import Budget, Sources
from cnnlab.train.rundir import load_run
from tiny_nets import SHARED_RELU as SHARED
from tiny_nets import imported_run, relu_calls

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CALLS = ["relu", "relu #2", "relu #3"]


@pytest.fixture
def shared(tmp_path):
    path = imported_run(tmp_path, SHARED, data="digits")
    run = load_run(path)
    budget = Budget(probe_train=64, probe_test=32, actmax_steps=2, erf_inputs=2)
    return path, run, Sources(path, run, None, budget)


def test_each_call_of_a_shared_relu_ends_a_block_as_the_explorer_lists_it(shared):
    """Before: ['c1', 'c2', 'relu'], 'relu' read as the first call (8×8) for the 2×2 block."""
    path, _, src = shared
    assert src.map_layers == CALLS
    assert create_app(path).state.explorer.top_layers() == CALLS
    assert src.stages == CALLS  # one per resolution: 8×8, 4×4, 2×2
    assert src.gradcam_layer == "relu #3"  # explain's default: the last map's call


def test_the_feature_maps_are_each_calls_own_output(shared):
    _, run, src = shared
    maps = facts._maps(src)
    _, x, _ = src.test
    truth = relu_calls(run.model, x[:1])
    assert [label for label, _ in maps.layers] == [f"{c} ReLU" for c in CALLS]
    for (_, array), seen in zip(maps.layers, truth, strict=True):
        assert array.shape == tuple(seen[0].shape)
        assert np.allclose(array, seen[0].numpy(), atol=1e-6)
    assert maps.before_activation == ()


def test_activation_maximisation_reads_each_stages_call(shared):
    """Each stage's tiles are that call's channels (4, 6 and 8 of them: budget 8 channels
    asks for all), and its images explain's at that call's label."""
    _, run, src = shared
    src.budget = Budget(actmax_steps=2, actmax_channels=8)
    _, x, _ = src.test
    widths = [t.shape[1] for t in relu_calls(run.model, x[:1])]
    torch.manual_seed(0)
    tiles = facts._actmax(src)
    labels = [t.layer for t in tiles]
    assert labels == [f"{c} ReLU" for c, w in zip(CALLS, widths, strict=True) for _ in range(w)]
    assert widths == [4, 6, 8]
    torch.manual_seed(0)
    start = 0
    for call, width in zip(CALLS, widths, strict=True):
        r = explain.activation_maximization(
            run.model, call, list(range(width)), steps=2, data=x[:512], restarts=1,
            objective="centre",
        )  # fmt: skip
        imgs = r.images.detach().float()
        lo = imgs.amin((1, 2, 3), keepdim=True)
        imgs = (imgs - lo) / (imgs.amax((1, 2, 3), keepdim=True) - lo).clamp_min(1e-12)
        for i in range(width):
            assert np.allclose(tiles[start + i].image, imgs[i].numpy(), atol=1e-5)
        start += width


def test_the_probes_read_each_call_pooled(shared):
    """Each probe reads that call's maps: its accuracy is explain's probe at that label."""
    _, run, src = shared
    result = facts._probes(src)
    assert list(result.accuracy) == ["input", *(f"{c} ReLU" for c in CALLS)]
    _, xtr, ytr = src.split("train", 64)
    _, xte, yte = src.test
    truth = explain.linear_probe(
        run.model, (xtr, ytr), (xte[:32], yte[:32]), layers=CALLS, epochs=src.budget.probe_epochs
    )
    for call in CALLS:
        assert result.accuracy[f"{call} ReLU"] == pytest.approx(float(truth[call]))


def test_the_erf_rows_are_each_calls_field(shared):
    """Theoretical field by r_l = r_{l-1} + (k - 1)·j_{l-1}, j_l = j_{l-1}·s: 3×3 convs of
    strides 1, 2, 2 give 3, 5 and 9 px; 'relu' alone read as its first call gave 3."""
    _, _, src = shared
    rows = facts._erf(src)
    assert [r.layer for r in rows] == [f"{c} ReLU" for c in CALLS]
    assert [r.theoretical for r in rows] == [3, 5, 9]


TIED = """
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return x + self.relu(self.conv(x))


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.block = Block()
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        x = self.block(self.block(self.stem(x)))
        return self.head(self.pool(x).mean((2, 3)))


def make():
    torch.manual_seed(0)
    return Tied()
"""


def test_a_residual_block_applied_twice_ends_its_stage_at_its_second_call(tmp_path):
    """The 8×8 stage is what the pool reads: the tied block's second sum (`block #2`), not its
    first ('block', which explain reads as the first call) nor its last ReLU."""
    path = imported_run(tmp_path, TIED, data="digits")
    run = load_run(path)
    src = Sources(path, run, None, Budget())
    assert src.stages[0] == "block #2"
    _, x, _ = src.test
    sums, read = [], []
    hooks = [
        run.model.block.register_forward_hook(lambda m, i, o: sums.append(o.detach().clone())),
        run.model.pool.register_forward_hook(lambda m, i, o: read.append(i[0].detach().clone())),
    ]
    with torch.no_grad():
        run.model.eval()(x[:2])
    for hook in hooks:
        hook.remove()
    assert len(sums) == 2 and torch.equal(sums[1], read[0])
    assert not torch.equal(sums[0], read[0])
    out = explain.feature_maps(run.model, x[:2], src.stages[:1])  # the label read back
    assert torch.equal(out["block #2"], read[0])


def test_the_layers_table_names_each_call_as_the_summary_does(shared):
    """The architecture table had three rows named `relu` (one per call); each is the call's
    label, as `cnnlab summary` prints it. Truth: forward hooks on the leaf modules, counting
    each module's calls in the order they run."""
    _, run, src = shared
    order, counts = [], {}
    leaves = [(n, m) for n, m in run.model.named_modules() if not list(m.children())]

    def seen(name):
        def hook(m, i, o):
            counts[name] = counts.get(name, 0) + 1
            order.append(name if counts[name] == 1 else f"{name} #{counts[name]}")

        return hook

    hooks = [m.register_forward_hook(seen(n)) for n, m in leaves]
    with torch.no_grad():
        run.model.eval()(torch.zeros(1, *run.input_shape))
    for hook in hooks:
        hook.remove()
    table = show.show_layers(facts._summary(src), None)[0]
    assert [row[0] for row in table["rows"]] == order
    assert order == ["c1", "relu", "c2", "relu #2", "c3", "relu #3", "head"]
