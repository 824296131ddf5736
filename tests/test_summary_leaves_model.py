"""summary traces a copy of the user's model (`copying.copy_module`): after it, whatever the
forward did (caching, counting, appending, registering, replacing, an error, Ctrl-C), the model
is the one it was: the same module objects holding the same attribute objects, tensors equal to
a deepcopy taken before and none of them on meta, the same modes, hooks and requires_grad."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cnnlab.design.summary import summary


class Busy(nn.Module):
    """A model whose forward writes into itself and its children in every way it can."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.extra = nn.ModuleList([nn.ReLU()])
        self.head = nn.Linear(4, 2)
        self.count = 0
        self.seen: list[int] = []
        self.table: dict[str, object] = {}
        self.cache: torch.Tensor | None = None
        self.pos = torch.ones(1, 4, 1, 1)  # a tensor in a plain attribute
        self.register_buffer("scale", torch.full((1,), 2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count += 1
        self.seen.append(self.count)
        y = self.conv(x) + self.pos
        self.table["last"] = y
        self.cache = y
        self.pos.add_(1)  # in place on the plain attribute
        self.scale.mul_(3)  # and on a buffer
        self.register_buffer("made", torch.zeros(1))
        self.conv.padding = (2, 2)  # a torch child's attribute
        self.conv.register_buffer("mark", torch.zeros(1))  # and its buffer dict
        self.extra.append(nn.Tanh())  # a torch container's child dict
        self.conv.register_forward_hook(lambda m, i, o: None)  # hook dicts
        self.register_forward_pre_hook(lambda m, i: None)
        head = self.head
        self.head = nn.Identity()  # a child replaced
        return head(y.mean((2, 3)))


def _state(model: nn.Module) -> list[tuple]:
    """Each module with a shallow copy of its attribute dict, of its tensor and child dicts
    and of its hook dicts (the objects themselves, to check identity)."""
    return [
        (name, m, dict(vars(m)), dict(m._parameters), dict(m._buffers), dict(m._modules),
         set(m._non_persistent_buffers_set), *_hook_dicts(m))
        for name, m in model.named_modules()
    ]  # fmt: skip


def _hook_dicts(module: nn.Module) -> list[dict]:
    return [dict(v) for k, v in sorted(vars(module).items()) if "hook" in k and isinstance(v, dict)]


def _tensors(value: object, found: list, seen: set) -> list:
    """Every tensor reachable from value through containers and objects' attributes."""
    if id(value) in seen:
        return found
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        found.append(value)
    elif isinstance(value, dict):
        for item in [*value.keys(), *value.values()]:
            _tensors(item, found, seen)
    elif isinstance(value, list | tuple | set):
        for item in value:
            _tensors(item, found, seen)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        _tensors(vars(value), found, seen)
    return found


def _assert_unchanged(model: nn.Module, before: list[tuple], twin: nn.Module) -> None:
    """model is as `before` (identity) and as `twin` (a deepcopy taken before: values)."""
    after = _state(model)
    assert [(n, id(m)) for n, m, *_ in after] == [(n, id(m)) for n, m, *_ in before]
    for (_, m, *was), (_, _, *now) in zip(before, after, strict=True):
        for old, new in zip(was, now, strict=True):
            assert old.keys() == new.keys() if isinstance(old, dict) else old == new
            if isinstance(old, dict):
                assert all(old[k] is new[k] for k in old), type(m).__name__
        assert vars(m)["_parameters"] is was[0]["_parameters"]
        assert vars(m)["_buffers"] is was[0]["_buffers"]
        assert vars(m)["_modules"] is was[0]["_modules"]
    for (name, m), (_, t) in zip(model.named_modules(), twin.named_modules(), strict=True):
        assert m.training == t.training, name
        mine, theirs = _tensors(vars(m), [], set()), _tensors(vars(t), [], set())
        assert len(mine) == len(theirs), name
        for a, b in zip(mine, theirs, strict=True):
            assert not a.is_meta, name
            assert a.requires_grad == b.requires_grad and torch.equal(a, b), name


def test_a_forward_writing_into_the_model_leaves_the_users_model_as_it_was():
    model = Busy().train()
    model.conv.weight.requires_grad_(False)
    model.conv.register_forward_hook(lambda m, i, o: o * 0)
    before, twin = _state(model), copy.deepcopy(model)
    result = summary(model, (3, 8, 8))
    _assert_unchanged(model, before, twin)
    assert model.count == 0 and model.seen == [] and model.table == {} and model.cache is None
    assert summary(model, (3, 8, 8)) == result  # a second summary sees the same model
    assert result == summary(twin, (3, 8, 8))
    assert [r.name for r in result.rows] == ["conv", "head"]


class Cached(nn.Module):
    """Hugging Face LeViT's way: a dict cache filled in eval mode, holding a tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bias_cache: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = str(x.device)
        if key not in self.bias_cache:
            self.bias_cache[key] = self.conv.weight.sum()
        return self.conv(x) + self.bias_cache[key]


@pytest.mark.parametrize("warm", [False, True], ids=["empty-cache", "filled-cache"])
def test_a_dict_cache_keeps_its_entries_and_gains_none(warm):
    model = Cached().eval()
    if warm:
        model(torch.zeros(1, 3, 8, 8))  # a real forward with gradients on: a cached grad_fn
    cache = model.bias_cache
    entries = dict(cache)
    before, twin = _state(model), copy.deepcopy(model) if not warm else None
    summary(model, (3, 8, 8))
    assert model.bias_cache is cache and cache.keys() == entries.keys()
    assert all(cache[k] is entries[k] for k in cache)
    if twin is not None:
        _assert_unchanged(model, before, twin)


class Raises(nn.Module):
    """A forward that raises `error` after writing into the model."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.error = error
        self.count = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count += 1
        self.conv.stride = (2, 2)
        self.conv(x)
        raise self.error


@pytest.mark.parametrize("error", [KeyboardInterrupt(), ValueError("no")], ids=["ctrl-c", "error"])
def test_a_forward_that_raises_leaves_the_model_as_it_was(error):
    model = Raises(error).train()
    before = _state(model)
    with pytest.raises((KeyboardInterrupt, Exception)):
        summary(model, (3, 8, 8))
    assert model.count == 0 and model.conv.stride == (1, 1) and model.training
    assert "forward" not in vars(model) and "forward" not in vars(model.conv)
    assert "_compiled_call_impl" not in vars(model.conv)
    _assert_unchanged(model, before, copy.deepcopy(model))


class Item(nn.Module):
    """A forward that meta cannot run (`.item()`): the real forward on a copy takes over."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.count = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count += 1
        y = self.conv(x)
        return y * float(y.abs().max().item() >= 0)


def test_a_model_meta_cannot_run_is_left_as_it_was_by_both_traces():
    model = Item().eval()
    before, twin = _state(model), copy.deepcopy(model)
    result = summary(model, (3, 8, 8))
    assert result.rows[0].output_shape == (4, 6, 6)
    assert model.count == 0
    _assert_unchanged(model, before, twin)


def _weight_normed() -> nn.Module:
    model = Busy()
    nn.utils.parametrizations.weight_norm(model.conv)  # copied by copy.deepcopy (__deepcopy__)
    return model


@pytest.mark.parametrize(
    "wrap",
    [nn.DataParallel, torch.compile, lambda m: nn.Sequential(m), lambda m: _weight_normed()],
    ids=["data-parallel", "compiled", "inside-a-sequential", "weight-norm"],
)
def test_a_wrapped_or_parametrized_model_is_left_as_it_was(wrap):
    model = wrap(Busy())
    before, twin = _state(model), copy.deepcopy(model)
    summary(model, (3, 8, 8))
    _assert_unchanged(model, before, twin)
