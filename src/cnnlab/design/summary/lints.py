"""Design lints: each a pure function of a `Trace` (facts.py) that returns its `Lint`s, kept
in a module by what it reads (lint_rows, lint_windows, lint_layers, lint_sizes, lint_output);
here, every code with its lint, in the order the summary lists them.

empty-output       a layer's output holds no values: a 0 in its shape (torch runs it)
floor              a window never reads the right/bottom edge (§2.2)
dilated-stride     a dilated window at stride > 1 skips pixels inside the map (§2.2)
even-kernel-same   'same' padding with an even kernel is asymmetric (§2.3)
linear-collapse    two linear maps with nothing nonlinear between that one map replaces (§4.1)
flatten-explosion  the dense layer after a flatten holds most parameters (§5.2)
fixed-size         the dense head's input size is tied to the image size (§5.2)
rf-small           the map entering the head does not see the whole image (§3.2)
saturating         two or more sigmoid/tanh-like outputs feed hidden layers of a deep net (§4.2)
batch-statistics   a BatchNorm without running statistics normalizes by its batch in eval mode
probabilities-out  the output of K > 1 classes is already softmax's or sigmoid's: cross-entropy
                   adds another; a softmax of one value is constant (§5.5)
bounded-scores     the K > 1 class scores come out of a tanh: within a spread of 2, so softmax
                   gives no class more than e²/(e² + K − 1) (45.1 % at K = 10) (§5.5)
unfollowed         a torch function the trace cannot follow: rows with no receptive field

Two more come from the copy the trace runs, not from its facts (summary/__init__.py):
hooks              forward hooks of the user's are not run, so what they change is not shown
quantized          torch.ao layers keep packed weights: in no parameter or MAC total
"""

from __future__ import annotations

from collections.abc import Callable

from cnnlab.design.summary.facts import Lint, Trace
from cnnlab.design.summary.lint_layers import batch_statistics, linear_collapse, saturating
from cnnlab.design.summary.lint_output import (
    bounded_scores,
    probabilities_out,
    probability_ceiling,
)
from cnnlab.design.summary.lint_rows import empty_output, unfollowed
from cnnlab.design.summary.lint_sizes import (
    chain_size,
    fixed_size,
    flatten_explosion,
    rf_small,
    sizes_that_run,
)
from cnnlab.design.summary.lint_windows import (
    dilated_stride,
    dropped_pixels,
    even_kernel_same,
    floor,
)

__all__ = [
    "LINTS", "chain_size", "dropped_pixels", "lints", "probabilities_out", "probability_ceiling",
    "sizes_that_run",
]  # fmt: skip

# (code, lint): the code each lint's findings carry, in the order the summary lists them
LINTS: tuple[tuple[str, Callable[[Trace], list[Lint]]], ...] = (
    ("empty-output", empty_output),
    ("floor", floor),
    ("dilated-stride", dilated_stride),
    ("even-kernel-same", even_kernel_same),
    ("linear-collapse", linear_collapse),
    ("flatten-explosion", flatten_explosion),
    ("fixed-size", fixed_size),
    ("rf-small", rf_small),
    ("saturating", saturating),
    ("batch-statistics", batch_statistics),
    ("probabilities-out", probabilities_out),
    ("bounded-scores", bounded_scores),
    ("unfollowed", unfollowed),
)


def lints(t: Trace) -> list[Lint]:
    """Every lint's findings, in LINTS order, one per (code, layer)."""
    found: dict[tuple[str, str], Lint] = {}
    for _, lint in LINTS:
        for w in lint(t):
            found.setdefault((w.code, w.layer), w)
    return list(found.values())
