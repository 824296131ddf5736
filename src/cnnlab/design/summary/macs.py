"""Multiply-accumulates of one layer call, by module type, in torchinfo's convention (so totals
agree): a conv C_out·C_in/groups·kh·kw per output position plus C_out for its bias, a linear
layer in·out (+ out) per output row, a recurrent layer its weights per time step, multi-head
attention its projections per token (`attention_macs`), any other leaf with parameters
(BatchNorm) one per parameter, a container 0 (its children have rows). And the parameters a
row carries where a child is read, not called (`uncalled_rows`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.design.summary.facts import RowFact


def _conv_macs(m: nn.Conv2d, out: Tensor) -> int:
    """Per output position C_out·C_in/groups·kh·kw, + C_out with a bias (torchinfo counts the
    bias as a MAC per position too)."""
    per_position = m.out_channels * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    bias = m.out_channels if _bias(m) is not None else 0
    shape = out.shape
    positions = shape[2] * shape[3] if len(shape) == 4 else math.prod(shape[2:])
    return (per_position + bias) * positions


def _linear_macs(m: nn.Linear, out: Tensor) -> int:
    """in·out (+ out with a bias) per output row."""
    bias = m.out_features if _bias(m) is not None else 0
    return (m.in_features * m.out_features + bias) * math.prod(out.shape[:-1])


def _recurrent_macs(m: nn.RNNBase, out: Tensor) -> int:
    """Every weight and bias once per time step of each sequence (torchinfo's count): an LSTM
    layer's step is 4H·(I + H) multiply-adds per direction, its weights, + its 8H biases; a
    stacked layer runs every step too. The steps: the output's rows, T·B (B = 1 per image,
    or an image's rows run as a batch of sequences; a PackedSequence's data: all steps)."""
    steps = math.prod(out.shape[:-1])
    return sum(p.numel() for p in m._parameters.values() if p is not None) * steps


def attention_macs(m: nn.MultiheadAttention, out: Tensor) -> int:
    """Its projections as Linear layers per row: q and out_proj (E·E + E each) per query
    token (the output's rows), k and v (E·kdim + E, E·vdim + E) per key token (the key's
    rows, noted by `keys_noted`; the output's where not noted), each sequence's where a
    batch of them runs (a window attention's windows). out_proj is a child no forward
    calls, so it has no row of its own. QKᵀ and the weighted sum of V multiply
    activations, no weights: uncounted, as for a transformer of Linear layers."""
    tokens = math.prod(out.shape[:-1])  # L per image (B = 1), batch_first or not
    keys = vars(m).get(_KEYS, tokens)
    e, bias = m.embed_dim, 2 * m.embed_dim if m.in_proj_bias is not None else 0
    per_key = e * (m.kdim + m.vdim) + bias
    return (sum(p.numel() for p in m.parameters()) - per_key) * tokens + per_key * keys


# nn.MultiheadAttention's out_proj: its forward reads the weights, never calls the module
OUT_PROJ = nn.modules.linear.NonDynamicallyQuantizableLinear


def uncalled_rows(rows: list[RowFact], uncalled: list[tuple[str, tuple[int, int]]]) -> list:
    """`rows` with each attention's out_proj (`uncalled`: (name, (parameters, trainable)))
    in its parent's row, where it has none of its own: the forward of an
    nn.MultiheadAttention reads out_proj's weights and never calls it, so the attention's
    row carries all of its parameters (each row's own; the totals count each once)."""
    ran = {r.name for r in rows}
    extra = {n.rpartition(".")[0]: c for n, c in uncalled if n not in ran}
    return [
        r._replace(params=r.params + extra[r.name][0], trainable=r.trainable + extra[r.name][1])
        if r.name in extra
        else r
        for r in rows
    ]


_KEYS = "_cnnlab_keys"  # the key length of an attention's call, in its (copy's) __dict__


def keys_noted(forward: Callable, state: dict) -> Callable:
    """An nn.MultiheadAttention's forward that notes its key rows in `state` (the module's
    __dict__) for `attention_macs`: S·N of a (S, N, E) or (N, S, E) key."""

    def noting(query: Tensor, key: Tensor, *args: Any, **kwargs: Any) -> Any:
        with torch._C.DisableTorchFunction():  # (a shape read: no call to trace)
            shape = key.shape
        state[_KEYS] = math.prod(shape[:-1])  # all key rows: windows folded in the batch too
        return forward(query, key, *args, **kwargs)

    return noting


def _bias(m: nn.Module) -> Any:
    """m.bias, read from its parameters where it is one: m.bias goes through
    nn.Module.__getattr__ (1.2 µs, 0.1 this way)."""
    p = m._parameters
    return p["bias"] if "bias" in p and "bias" not in vars(m) else getattr(m, "bias", None)


_MACS: dict[type, Callable[[Any, Tensor], int]] = {
    # every conv, transposed ones too: torchinfo counts a layer whose class name says "Conv"
    # as weight and bias elements per output position, as `_conv_macs` does
    nn.modules.conv._ConvNd: _conv_macs,
    nn.Linear: _linear_macs,
    nn.RNNBase: _recurrent_macs,
    nn.MultiheadAttention: attention_macs,
}


def macs_rule(module_type: type) -> Callable[[Any, Tensor], int] | None:
    """The MACs rule of a module type (a subclass of Conv2d counts as one), None for other
    types: a leaf with parameters (BatchNorm, LayerNorm, PReLU...) then counts one MAC per
    parameter, torchinfo's convention, a container 0 (its children have rows)."""
    return next((_MACS[cls] for cls in module_type.__mro__ if cls in _MACS), None)
