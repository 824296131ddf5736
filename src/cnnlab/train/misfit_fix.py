"""How to fix a weights file that does not fit the model `cnnlab import` builds, read from
the names and shapes alone (`misfit_fix`): the model's names under one more or one less
prefix (a DDP/DataParallel or a training framework's wrapper: `module.`, `model.`), under
another first name (the same network in another wrapper), all the model's and more (an
auxiliary head used only in training), only some of them, or the last layer alone with
another number of outputs (weights for another number of classes). '' when none of these
says it.
"""

from __future__ import annotations

import torch


def misfit_fix(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """'; <the fix>' for a file whose tensors `state` do not fit the model's `expected`
    (state_dicts), or ''."""
    return _prefix_hint(set(expected), set(state)) or _head_hint(expected, state)


def _prefix_hint(expected: set[str], found: set[str]) -> str:
    """The fix when the file's names are the model's under one more or one less prefix:
    saved from a DDP/DataParallel or a training framework's wrapper (`module.`, `model.`),
    or from the network inside the model's own wrapper."""
    for extra, short, extra_is_file in ((found, expected, True), (expected, found, False)):
        for prefix in {name.split(".", 1)[0] + "." for name in extra if "." in name}:
            behind = all(n.startswith(prefix) for n in extra)
            if not behind or {n.removeprefix(prefix) for n in extra} != short:
                continue
            if extra_is_file:
                return (
                    f"; every name in the file is the model's behind {prefix!r} (a wrapper's "
                    f"state_dict): save the inner module's, or strip the prefix: "
                    f"{{k.removeprefix({prefix!r}): v for k, v in state.items()}}"
                )
            return (
                f"; every name of the model is the file's behind {prefix!r}: the file holds "
                f"the weights of the module inside the model (saved by the library it comes "
                f"from, e.g. save_pretrained); add the prefix to its names: "
                f"{{{prefix!r} + k: v for k, v in state.items()}}"
            )
    return _swapped_prefix_hint(expected, found) or _one_sided_hint(expected, found)


def _swapped_prefix_hint(expected: set[str], found: set[str]) -> str:
    """The fix when the file's names are the model's under another first name: the same
    network saved from another wrapper (its `self.net`, the factory's `self.m`)."""
    heads = [{n.split(".", 1)[0] + "." for n in names} for names in (expected, found)]
    if any(len(h) != 1 for h in heads) or heads[0] == heads[1]:
        return ""
    (new,), (old,) = heads
    if {n.removeprefix(new) for n in expected} != {n.removeprefix(old) for n in found}:
        return ""
    return (
        f"; every name in the file is the model's with {old!r} in place of {new!r} (the same "
        f"network saved from another wrapper): rename them: "
        f"{{{new!r} + k.removeprefix({old!r}): v for k, v in state.items()}}"
    )


def _one_sided_hint(expected: set[str], found: set[str]) -> str:
    """The fix when one side's names are all the other's (no prefix apart): the file holds
    the model's and more (a head used only in training: Inception's auxiliary classifier, a
    loss's weights; or a deeper build of the model), or only some of the model's."""
    extra, lacking = len(found - expected), len(expected - found)
    if extra and not lacking:
        return (
            f"; the file holds every name of the model and {extra} more: build the model as "
            "they were trained (--model-arg) if it should have them, or, if they served only "
            "in training (an auxiliary head, a loss's weights), drop them: "
            "{k: v for k, v in state.items() if k in model.state_dict()}"
        )
    if lacking and not extra:
        return (
            f"; the file lacks {lacking} of the model's names and holds none it lacks: save "
            "the whole model's state_dict (a part of it, or one saved before layers were "
            "added, does not fill it), or build the model as the weights were trained "
            "(--model-arg)"
        )
    return ""


def _head_hint(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """The fix when the file's last layer alone differs, in its outputs (dim 0): weights
    trained for another number of classes (a head of 100 on the model's 10)."""
    differ = [k for k in expected if k in state and expected[k].shape != state[k].shape]
    layers = {k.rpartition(".")[0] for k in differ}
    last = next((k.rpartition(".")[0] for k in reversed(expected) if expected[k].ndim), None)
    if not differ or layers != {last} or set(expected) != set(state):
        return ""
    counts = {(expected[k].shape[0], state[k].shape[0]) for k in differ}
    if len(counts) != 1 or any(expected[k].shape[1:] != state[k].shape[1:] for k in differ):
        return ""
    ((n, k),) = counts
    return (
        f"; its last layer {last} gives {k} outputs, the model's {n} (weights for {k} "
        f"classes): build the model with {k} outputs (its factory's argument, --model-arg "
        f"NAME={k}) and import it with --data of those {k} classes, or without --data: "
        f"--classes with {k} names, --mean, --std and --input"
    )
