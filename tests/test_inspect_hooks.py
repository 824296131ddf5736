"""cnnlab.inspect.hooks, the one way the capture layer hooks a model: all hooks or none.
Truth: torch's own hook tables on each module (`_forward_hooks`, `_forward_pre_hooks`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import ExplainError
from cnnlab.inspect import ActivationSites, CallOrder, Capture, Hooks, first_called


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))


def _hooked(model: nn.Module) -> list[str]:
    """Names of the modules with any forward hook or pre-hook, read from torch's tables."""
    return [n for n, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks]


def test_hooks_run_in_order_and_are_gone_after_the_block_even_when_it_raises():
    model, calls = _net(), []
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(RuntimeError, match="boom"), Hooks() as hooks:
        hooks.before(
            (m, lambda mod, args, k=k: calls.append(("pre", k))) for k, m in enumerate(model)
        )
        hooks.after(
            (m, lambda mod, args, out, k=k: calls.append(("post", k))) for k, m in enumerate(model)
        )
        assert len(hooks) == 8 and _hooked(model) == ["0", "1", "2", "3"]
        model(x)
        raise RuntimeError("boom")
    assert calls == [(when, k) for k in range(4) for when in ("pre", "post")]
    assert _hooked(model) == []
    model(x)
    assert len(calls) == 8  # nothing fires any more
    hooks.remove()  # a second removal is harmless


def test_a_registration_that_fails_midway_leaves_no_hook_behind():
    """The pairs come from a generator that raises at the third module (as a bad layer name
    raises inside `Capture.__enter__`): the two hooks already registered are removed."""
    model, hooks = _net(), Hooks()
    hooks.before([(model[0], lambda mod, args: None)])

    def pairs():
        for k, m in enumerate(model):
            if k == 2:
                raise ExplainError("unknown layer")
            yield m, lambda mod, args, out: None

    with pytest.raises(ExplainError, match="unknown layer"):
        hooks.after(pairs())
    assert _hooked(model) == [] and len(hooks) == 0


def test_always_call_reaches_a_forward_that_raises():
    """torch's always_call: the forward hook runs although the module's forward failed."""
    model, seen = nn.Linear(4, 2), []
    with Hooks().after([(model, lambda mod, args, out: seen.append(out))], always_call=True):
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 5))  # wrong width
    assert seen == [None] and not model._forward_hooks


@pytest.mark.parametrize("make", ["capture", "capture_inputs", "order", "sites"])
def test_every_capture_class_removes_its_hooks_when_the_forward_raises(make):
    model = _net()
    block = {
        "capture": lambda: Capture(model, ["0", "3"]),
        "capture_inputs": lambda: Capture(model, ["0", "3"], inputs=True),
        "order": lambda: CallOrder(model),
        "sites": lambda: ActivationSites(model, lambda *a: None),
    }[make]()
    with pytest.raises(RuntimeError), block:
        assert _hooked(model)
        model(torch.randn(1, 1, 5, 5))  # 18 features reach a Linear that takes 8
    assert _hooked(model) == []


def test_first_called_removes_its_stopping_hooks():
    model = _net()
    assert first_called(model, nn.Linear, torch.randn(1, 1, 4, 4)) == "3"
    assert first_called(model, nn.Linear, torch.randn(1, 1, 5, 5)) == "3"  # stops before
    assert _hooked(model) == []
