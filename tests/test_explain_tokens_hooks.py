"""`Hooks.before(..., with_kwargs=True)`: pre-hooks that see a module's keyword arguments (CLIP's
layers take hidden_states= by keyword), removed with the set. Truth: the arguments the call
was given."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.inspect.hooks import Hooks


class Keyword(nn.Module):
    def forward(self, hidden_states, scale=1.0):
        return hidden_states * scale


def test_a_pre_hook_with_kwargs_sees_the_keyword_arguments_and_is_removed():
    module, seen = Keyword(), []
    x = torch.ones(2)
    with Hooks().before([(module, lambda m, a, kw: seen.append((a, kw)))], with_kwargs=True):
        module(hidden_states=x, scale=2.0)
    module(hidden_states=x)  # after the block: no hook
    ((args, kwargs),) = seen
    assert args == () and kwargs["hidden_states"] is x and kwargs["scale"] == 2.0


def test_a_plain_pre_hook_gets_the_positional_arguments_alone():
    module, seen = Keyword(), []
    x = torch.ones(2)
    with Hooks().before([(module, lambda m, a: seen.append(a))]):
        module(x, scale=3.0)
    assert len(seen) == 1 and seen[0][0] is x and len(seen[0]) == 1
