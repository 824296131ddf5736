"""Scores a bounded activation made, for `Tracer.ended`: a model whose (B, K) output comes
straight out of a tanh (MONAI's ViT ends its head in nn.Tanh) gives softmax scores within a
spread of 2, which caps every class's probability (`lint_output.bounded_scores`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from cnnlab.design.activations import ACTIVATIONS
from cnnlab.design.summary.facts import OutputFact, RowFact
from cnnlab.design.summary.tags import TAG

# an activation module's class name -> the activation (its bounds; an nn.Hardtanh's are its
# own min_val and max_val)
_BY_KIND = {m.__name__: a for a in ACTIVATIONS.values() for m in a.modules}
# a saturating function's bounds where only its caller is known: a tanh's, which a
# hardsigmoid's (0, 1) and a default hardtanh's lie within
_FUNCTION_BOUNDS = ACTIVATIONS["tanh"].bounds


def bounded_output(output: Any, rows: Sequence[RowFact], module: Any = None) -> OutputFact | None:
    """The fact of the model's K > 1 scores (B, K), its `output` or a tuple's or list's first
    entry (where models put their logits: MONAI's ViT returns (logits, hidden states)), made
    by the last saturating activation on their path (the tag's `squashed_by`) with only calls
    linear in it since, in the last row's call: that row an activation module's (nn.Tanh) or
    a function in its forward (torch.tanh). None where a module ran after it (a Linear; a
    BatchNorm1d rescales), where a sigmoid made them (probabilities: the probabilities-out
    lint's), or for a map or a single score (a generator's tanh image, a regression target
    in [−1, 1]). `module`: the last row's (an nn.Hardtanh's bounds are its own)."""
    out = output[0] if isinstance(output, tuple | list) and output else output
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[1] < 2 or not rows:
        return None
    tag, last = getattr(out, TAG, None), rows[-1]
    layer = last.name or "(model)"
    if tag is None or tag.squashed_by != layer:
        return None
    act = _BY_KIND.get(last.kind)
    if act is None:  # a function in the forward of `layer`
        return OutputFact(layer, "", False, out.shape[1], out.shape[1], _FUNCTION_BOUNDS)
    if act.name == "sigmoid" or act.bounds is None:
        return None
    bounds = act.bounds
    if isinstance(module, nn.Hardtanh):
        bounds = (float(module.min_val), float(module.max_val))
    return OutputFact(layer, last.kind, True, out.shape[1], out.shape[1], bounds)
