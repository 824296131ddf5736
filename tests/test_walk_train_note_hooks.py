"""Train's checks before the first step run the user's model in training mode on two zero
images (`fit._check_graph`; `fit.graph_walk`, read by the no-gradient note and DDP's
options). The user's forward hooks saw those forwards: a hook counting training-mode
forwards counted two more than the steps, and one that raises stopped train before a
step. They now run with the user's forward hooks set aside (`train.unhooked`), put back
after, the forward raised or not; torch's own (spectral_norm's pre-hook, which makes the
weight) stay. Truth: the steps counted by a weight's gradient (one backward a step), and a
real training-mode backward, after which exactly the unused parameters' .grad are None."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.modules import module as torch_module

from cnnlab.train import TrainConfig, train
from cnnlab.train.fit import unreached_parameters
from cnnlab.train.unhooked import unhooked

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = dict(epochs=1, batch_size=256, flip=False, tta=False, precision="fp32")


class AuxNet(nn.Module):
    """An auxiliary head the training-mode logits do not use."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.head, self.aux = nn.Linear(256, 10), nn.Linear(256, 10)

    def forward(self, x):
        h = self.body(x)
        return (self.head(h), self.aux(h))[0]


class Plain(nn.Module):
    """Every parameter in the training-mode logits' graph."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(256, 10)

    def forward(self, x):
        return self.head(self.body(x))


def _without_grad(model: nn.Module) -> list[str]:
    model.train()(torch.randn(4, 1, 8, 8)).sum().backward()
    names = [n for n, p in model.named_parameters() if p.grad is None]
    model.zero_grad(set_to_none=True)
    return names


def _zeros(args) -> bool:
    return bool((args[0] == 0).all())


def _counted(model: nn.Module, tmp_path) -> tuple[dict[str, int], dict]:
    """The training-mode forwards each kind of hook saw in `train`, the steps (backwards)."""
    seen = {"forward": 0, "pre": 0, "global": 0, "steps": 0}

    def count(key):
        def hook(module, args, *output):
            seen[key] += module.training and torch.is_grad_enabled()

        return hook

    def each(module, args, output):
        if module is model:
            count("global")(module, args, output)

    def step(param):
        seen["steps"] += 1

    model.register_forward_hook(count("forward"))
    model.body[0].register_forward_pre_hook(count("pre"))
    model.head.weight.register_post_accumulate_grad_hook(step)
    handle = torch_module.register_module_forward_hook(each)
    try:
        result = train(model, "digits", tmp_path / "run", TrainConfig(**CONFIG))
    finally:
        handle.remove()
    return seen, result


def test_a_counting_hook_sees_the_steps_forwards_only(tmp_path):
    torch.manual_seed(0)
    seen, _ = _counted(Plain(), tmp_path)
    assert seen["steps"] > 1
    assert seen["forward"] == seen["pre"] == seen["global"] == seen["steps"]


def test_a_graph_leaving_a_parameter_out_is_read_again_with_the_hooks(tmp_path):
    """A hook could feed the forward what reaches the left-out parameter (`fit._check_forward`):
    the untrained-layer note's walk is run again with them, so they see one forward more."""
    torch.manual_seed(0)
    seen, result = _counted(AuxNet(), tmp_path)
    assert seen["steps"] > 1
    assert seen["forward"] == seen["pre"] == seen["global"] == seen["steps"] + 1
    assert any("aux gets no gradient" in note for note in result["notes"])  # the note is made


def test_a_hook_raising_on_zero_images_does_not_stop_train(tmp_path):
    torch.manual_seed(0)
    model = AuxNet()

    def refuse(module, args):
        if module.training and torch.is_grad_enabled() and _zeros(args):
            raise RuntimeError("the hook saw a check's forward")

    model.body.register_forward_pre_hook(refuse)
    result = train(model, "digits", tmp_path / "run", TrainConfig(**CONFIG))
    assert any("aux gets no gradient" in note for note in result["notes"])


def _raising_hooks(model: nn.Module, calls: list):
    def raising(module, args, *output):
        calls.append(type(module).__name__)
        raise RuntimeError("a user's hook")

    model.register_forward_hook(raising)
    model.head.register_forward_pre_hook(raising)
    return torch_module.register_module_forward_pre_hook(raising)


def test_the_search_runs_no_user_hook_and_puts_them_back():
    torch.manual_seed(0)
    model, calls = Plain(), []
    handle = _raising_hooks(model, calls)
    try:
        found = unreached_parameters(model, (1, 8, 8))
        assert calls == []
        with pytest.raises(RuntimeError, match="a user's hook"):
            model(torch.zeros(1, 1, 8, 8))  # every hook is back
    finally:
        handle.remove()
    model._forward_hooks.clear()
    model.head._forward_pre_hooks.clear()
    assert found == _without_grad(model) == []


def test_hooks_raising_in_the_second_search_leave_the_first_answer():
    """AuxNet's graph leaves aux out: searched again with the hooks, which raise; the
    hook-free answer stands."""
    torch.manual_seed(0)
    model, calls = AuxNet(), []
    handle = _raising_hooks(model, calls)
    try:
        found = unreached_parameters(model, (1, 8, 8))
    finally:
        handle.remove()
    model._forward_hooks.clear()
    model.head._forward_pre_hooks.clear()
    assert calls and found == _without_grad(model) == ["aux.weight", "aux.bias"]


def test_hooks_are_put_back_when_the_forward_raises():
    torch.manual_seed(0)
    model, calls = AuxNet(), []
    model.body.register_forward_hook(lambda *a: calls.append("body"))
    model.head.register_forward_pre_hook(lambda *a: calls.append("head"))
    handle = torch_module.register_module_forward_hook(lambda m, *a: calls.append("global"))
    model.head.forward = lambda h: 1 / 0  # the forward raises inside `unhooked`
    try:
        with pytest.raises(ZeroDivisionError), unhooked(model):
            model(torch.zeros(1, 1, 8, 8))
        assert calls == []
        assert unreached_parameters(model, (1, 8, 8)) is None  # with the hooks too, it raises
        del model.head.forward
        calls.clear()
        model(torch.zeros(1, 1, 8, 8))
    finally:
        handle.remove()
    assert {"body", "head", "global"} <= set(calls)


def test_torchs_own_weight_hook_stays():
    """spectral_norm's pre-hook computes the weight the forward uses from weight_orig (the
    attribute it leaves at first holds no graph); a user's hook beside it is set aside."""
    torch.manual_seed(0)
    model = AuxNet()
    model.head = nn.utils.spectral_norm(nn.Linear(256, 10, bias=False))
    model.head.register_forward_hook(lambda *a: 1 / 0)
    found = unreached_parameters(model, (1, 8, 8))
    model.head._forward_hooks.clear()
    assert found == _without_grad(model) == ["aux.weight", "aux.bias"]
