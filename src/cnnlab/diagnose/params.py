"""Which parameters `gradient_flow` measures, module by module: each module's own `weight`
(a parameter, or computed by parametrize or the older hooked norms), or all its own
parameters where it has no weight (a layer scale, a lone bias); tied and frozen weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from cnnlab.inspect import weight_code


def weighted_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The modules that own a parameter (read through named_parameters: a TorchScript
    block's _parameters is a wrapper without .get), whatever its name (`weight`, a layer
    scale, a lone bias), or compute their weight from their own parameters (weight_norm,
    spectral_norm: torch.nn.utils.parametrize, or the older pre-hooks, `hooked_weight`), not the
    modules that compute it (`weight_code`): every trained parameter is in some row."""
    code = weight_code(model)
    return {
        name: m
        for name, m in model.named_modules()
        if name not in code and (weighted(m) or own_params(m))
    }


def own_params(m: nn.Module) -> list[Tensor]:
    """The parameters the module itself registers, in registration order."""
    return [p for _, p in m.named_parameters(recurse=False)]


def weighted(m: nn.Module) -> bool:
    """It has a `weight` of its own or computed (parametrize, the older hooked norms): its
    row measures that weight alone; a module without one, all of `own_params`."""
    weight = dict(m.named_parameters(recurse=False)).get("weight")
    computed = parametrize.is_parametrized(m, "weight") or hooked_weight(m)
    return isinstance(weight, nn.Parameter) or computed


_HOOKED_NORMS = (WeightNorm, SpectralNorm)  # torch's older API: forward pre-hooks


def hooked_weight(m: nn.Module) -> bool:
    """`weight` set by a forward pre-hook of torch's older weight_norm/spectral_norm
    (torch.nn.utils.weight_norm, .spectral_norm): a new tensor at every call, computed from
    weight_g/weight_v or weight_orig, so only a hook running after theirs sees it."""
    hooks = getattr(m, "_forward_pre_hooks", None) or {}
    return any(isinstance(h, _HOOKED_NORMS) and h.name == "weight" for h in hooks.values())


def plain_weight(m: nn.Module) -> Tensor | None:
    """The module's own `weight` Parameter; None where the weight is computed (parametrize,
    the older hooked norms), which is never counted as tied."""
    if parametrize.is_parametrized(m, "weight") or hooked_weight(m):
        return None
    return dict(m.named_parameters(recurse=False)).get("weight")


def untied(modules: dict[str, nn.Module]) -> tuple[dict[str, nn.Module], dict[str, tuple]]:
    """(the modules with each weight Parameter once, under its first owner in named_modules
    order, as named_parameters() names it; {first owner: the other owners}). Two modules with
    one Parameter have one gradient, the sum over both uses: measured once, listed once."""
    firsts: list[tuple[Tensor, str]] = []  # held, compared by identity
    unique: dict[str, nn.Module] = {}
    others: dict[str, list[str]] = {}
    for name, m in modules.items():
        w = plain_weight(m)
        owner = next((n for p, n in firsts if p is w), None) if w is not None else None
        if owner is not None:
            others.setdefault(owner, []).append(name)
            continue
        unique[name] = m
        if w is not None:
            firsts.append((w, name))
    return unique, {k: tuple(v) for k, v in others.items()}


def frozen_modules(modules: dict[str, nn.Module]) -> set[str]:
    """The modules whose weight does not train: every parameter it is (or is computed from)
    has requires_grad False. None of them where no weight trains (a model frozen whole, as
    for inference): then the flags single out no layer."""
    frozen = set()
    for name, m in modules.items():
        if parametrize.is_parametrized(m, "weight"):
            own = list(m.parametrizations["weight"].parameters())
        elif weighted(m):  # the weight, or the older hooked norms' weight_g/weight_v, weight_orig
            own = [p for n, p in m.named_parameters(recurse=False) if n.startswith("weight")]
        else:
            own = own_params(m)
        if not any(p.requires_grad for p in own):
            frozen.add(name)
    return set() if frozen == set(modules) else frozen


def joined(grads: list[Tensor | None], params: list[Tensor]) -> Tensor | None:
    """The parameters' gradients as one flat vector (None: no parameter reached)."""
    if all(g is None for g in grads):
        return None
    flat = [
        (torch.zeros_like(p) if g is None else g).flatten()
        for g, p in zip(grads, params, strict=True)
    ]
    return torch.cat(flat)


def zeros(m: nn.Module) -> Tensor:
    """float64 zeros shaped as the module's weight; flat, as many as its own parameters' values,
    for a module without a weight (`joined`)."""
    if weighted(m):
        return torch.zeros_like(m.weight, dtype=torch.float64)
    own = own_params(m)
    return torch.zeros(sum(p.numel() for p in own), dtype=torch.float64, device=own[0].device)
