"""Lints read off the table's rows: a row whose output holds no values (empty-output), rows
after a torch function the trace cannot follow, which show no receptive field (unfollowed)."""

from __future__ import annotations

from cnnlab.design.summary.facts import Lint, Trace
from cnnlab.design.summary.render import call_label, shape_text


def _label(name: str, call: int) -> str:
    """A row's name as the table shows it: 'block', 'block #2' for its second call."""
    return call_label(name or "(model)", call)


def _empty_axis(shape: tuple[int, ...]) -> str:
    """The name of the first 0 axis of one image's output: (C, H, W) or (features,)."""
    names = {1: ("features",), 3: ("channels", "height", "width")}.get(len(shape), ())
    i = shape.index(0)
    return names[i] if names else f"axis {i + 1} of {len(shape)}"


# a conv of 0 output channels never gets here (torch refuses it, so the summary does): 0
# channels come from the layer's own code, 0 features from a Linear(n, 0) or a slice
_EMPTY_FIX = {
    "channels": "it keeps 0 channels (a slice, split or narrow to 0 of them). Fix: keep at "
    "least one channel.",
    "features": "it makes 0 features (a Linear's out_features=0, a slice to 0). Fix: give it "
    "at least one feature.",
}


def empty_output(t: Trace) -> list[Lint]:
    """The first layer (in call order) whose output has no elements, a 0 in its shape: torch
    runs an AdaptiveAvgPool2d((0, 3)), a slice to 0 channels or a Linear(8, 0) without an
    error (a Conv2d(3, 0, 3) it refuses), and every layer after it computes on nothing (a
    sum over no values is 0, so the prediction ignores the input and nothing before it gets
    a gradient)."""
    empty = [r for r in t.rows if 0 in r.output_shape]
    if not empty:
        return []
    first, axis = empty[0], _empty_axis(empty[0].output_shape)
    why = _EMPTY_FIX.get(axis, (
        f"its output size along the {axis} is 0 (an adaptive pool's output_size, a slice or "
        "a reshape to 0). Fix: an output size of at least 1 along every axis."
    ))  # fmt: skip
    later = f"; {len(empty) - 1} later row(s) are empty too" if len(empty) > 1 else ""
    return [Lint(
        "empty-output", _label(first.name, first.call),
        f"layer {_label(first.name, first.call)} ({first.kind}) outputs "
        f"{shape_text(first.output_shape)}, which holds no values ({axis} 0){later}: torch "
        "runs it, but every layer after it computes on nothing, so the output does not "
        f"depend on the input and nothing before it learns; {why}",
    )]  # fmt: skip


def unfollowed(t: Trace) -> list[Lint]:
    """A torch function whose effect on the receptive field the trace does not know: the
    rows after it show no field ('?'); which rows, by name. One lint per layer, naming each
    function lost there (a lint is one per code and layer: a second would hide the rows
    the first does not name)."""
    found, by_layer = [], {}
    for lost in t.lost:
        by_layer.setdefault(lost.layer, []).append(lost.function)
    for layer, functions in by_layer.items():
        rows = [_label(r.name, r.call) for r in t.rows if r.lost_by in functions]
        named = ", ".join(rows[:6]) + (f" and {len(rows) - 6} more" if len(rows) > 6 else "")
        after = (
            f"{len(rows)} row(s) after it have none ({named}); their shapes, parameters and "
            "MACs are still torch's own."
            if rows
            else "its output reaches no layer's row."
        )
        found.append(Lint(
            "unfollowed", layer,
            f"the trace cannot follow the receptive field through {' and '.join(functions)}: "
            f"{after}",
        ))  # fmt: skip
    return found
