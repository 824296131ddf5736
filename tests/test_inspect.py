"""cnnlab.inspect, the capture layer under diagnose, explain, the report, the lab and the
explorer. Truths: snapshots of the model taken before a call, the order a hand-written
forward calls its modules in, and torch's own ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import cnnlab.inspect as inspect
from cnnlab.errors import DataError, ExplainError
from cnnlab.inspect import (
    ActivationSites,
    CallOrder,
    Capture,
    batches,
    check_images,
    first_called,
    preserved,
    trace,
)

# The names other parts of cnnlab import from `cnnlab.inspect`: they must keep working.
PUBLIC = (
    "Capture inspecting forward layer_names resolve_layer resolve_target select_logits batches "
    "check_images default_layer spatial_layers is_spatial trace as_float inference_copy "
    "OutputSelector preserved"
).split()


def test_the_public_names_are_exported():
    assert set(PUBLIC) <= set(inspect.__all__)
    for name in inspect.__all__:
        assert getattr(inspect, name) is not None


class HeadFirst(nn.Module):
    """Registers its head before its body, and calls one ReLU module twice."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = self.relu(self.bn(self.conv1(x)))
        x = self.relu(self.conv2(self.drop(x)))
        return self.head(x.mean((2, 3)))


def snapshot(model: nn.Module) -> tuple:
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [(dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in model.modules()],
        [b.clone() for b in model.buffers()],
    )


def assert_same(before: tuple, after: tuple) -> None:
    assert before[:3] == after[:3]
    assert all(torch.equal(a, b) for a, b in zip(before[3], after[3], strict=True))


@settings(max_examples=25, deadline=None)
@given(
    modes=st.lists(st.booleans(), min_size=7, max_size=7),
    grads=st.lists(st.booleans(), min_size=8, max_size=8),
    train=st.booleans(),
    requires_grad=st.sampled_from([False, True, None]),
)
def test_preserved_gives_the_model_back_as_it_was(modes, grads, train, requires_grad):
    """Any mix of train/eval flags and requires_grad flags, a user's own hook, a train-mode
    forward (BatchNorm statistics, dropout's RNG draw) and a hook left by a failing call."""
    model = HeadFirst()
    for module, mode in zip(model.modules(), modes, strict=True):
        module.training = mode
    for p, flag in zip(model.parameters(), grads, strict=True):
        p.requires_grad_(flag)
    model.conv1.register_forward_hook(lambda *a: None)  # the user's: must stay
    before, rng = snapshot(model), torch.get_rng_state()
    with (
        pytest.raises(RuntimeError, match="boom"),
        preserved(model, train=train, requires_grad=requires_grad),
    ):
        assert all(m.training == train for m in model.modules())
        if requires_grad is not None:
            assert all(p.requires_grad == requires_grad for p in model.parameters())
        model.conv2.register_forward_hook(lambda *a: None)  # left behind by a failed call
        model.bn.register_forward_pre_hook(lambda *a: None)
        with torch.no_grad():
            model(torch.randn(2, 1, 5, 5))
        raise RuntimeError("boom")
    assert_same(before, snapshot(model))
    if train:  # a train-mode forward drew dropout masks: the RNG is put back
        assert torch.equal(torch.get_rng_state(), rng)


def test_trace_and_call_order_follow_the_forward_not_the_registration():
    model = HeadFirst().eval()
    x = torch.randn(1, 1, 6, 6)
    names = [name for name, _ in trace(model, x)]
    # children finish before their parent; the twice-called relu appears at its last call
    assert names == ["conv1", "bn", "drop", "conv2", "relu", "head"]
    assert dict(trace(model, x))["head"] == (1, 3)
    with CallOrder(model) as order, torch.no_grad():
        model(x)
    assert [n for n, _ in order.calls] == [
        "conv1", "bn", "relu", "drop", "conv2", "relu", "head"
    ]  # fmt: skip
    assert order.first_calls() == ["conv1", "bn", "relu", "drop", "conv2", "head"]
    assert not model.conv1._forward_hooks  # removed on exit


def test_first_called_stops_before_the_layers_that_would_not_take_the_input():
    """conv1 is registered after conv2 and head, and is what the images meet first; a 3-channel
    input would fail at conv1 itself, a 1-channel 1×1 image only later (the mean is fine)."""
    model = HeadFirst()
    assert first_called(model, nn.Conv2d, torch.zeros(1, 1, 1, 1)) == "conv1"
    assert first_called(model, nn.Linear, torch.zeros(1, 1, 4, 4)) == "head"
    assert first_called(model, nn.LSTM, torch.zeros(1, 1, 4, 4)) is None


def test_capture_keeps_a_layers_own_output_under_a_later_in_place_op():
    """`out += 1` after the layer: the capture holds the layer's value (torch's own conv)."""

    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            out = self.conv(x)
            out += 1
            return self.relu(out).flatten(1)

    torch.manual_seed(0)
    model, x = InPlace(), torch.randn(2, 1, 5, 5)
    with Capture(model, ["conv"]) as cap, torch.no_grad():
        out = model(x)
    expected = F.conv2d(x, model.conv.weight, model.conv.bias)
    assert torch.equal(cap.tensor("conv"), expected)
    assert torch.allclose(out, F.relu(expected + 1).flatten(1))


def test_activation_sites_see_modules_and_functional_calls():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.act = nn.ReLU6()

        def forward(self, x):
            return torch.sigmoid(self.act(F.relu(self.conv(x)))).flatten(1)

    seen = []
    model = Mixed()
    with ActivationSites(model, lambda site, a, y: seen.append((site, a.name))):
        model(torch.randn(1, 1, 4, 4))
    assert seen == [("relu()", "relu"), ("act", "relu6"), ("sigmoid()", "sigmoid")]
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_batches_and_images_say_what_is_wrong():
    x, y = torch.randn(5, 1, 4, 4), torch.arange(5)
    assert [len(b) for b, _ in batches((x, y), 2)] == [2, 2, 1]
    assert [t.tolist() for _, t in batches((x, y), 3)] == [[0, 1, 2], [3, 4]]
    with pytest.raises(DataError, match="no labels"):
        list(batches(x, 2, labels=True))
    with pytest.raises(ExplainError, match=r"\(B, C, H, W\)"):
        check_images(torch.randn(3, 4))
    assert check_images(torch.randn(3, 4), flat=True).shape == (3, 4)
    with pytest.raises(ExplainError, match="uint8.*normalise"):
        check_images(torch.zeros(1, 1, 2, 2, dtype=torch.uint8))


def test_a_call_label_of_the_summary_is_told_to_be_a_module_name():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.relu = nn.Conv2d(1, 2, 3, padding=1), nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv(self.relu(x)))

    model = Twice()
    # the summary's row `relu #2`, copied into --layer, reads that call (Capture(calls=True))
    assert inspect.resolve_layer(model, "relu #2") is model.relu
    with pytest.raises(ExplainError, match="valid layer names"):
        inspect.resolve_layer(model, "conv #x")
    with pytest.raises(ExplainError, match="valid layer names"):
        inspect.resolve_layer(model, "2")  # no " #": not taken for the model's own call
    x = torch.randn(1, 1, 4, 4)
    with inspect.Capture(model, ["relu"]) as cap:
        model(x)
    assert torch.equal(cap.outputs["relu"], model(x))  # the last call, as the message says
