"""The summary as text: a rich table, the totals, the lints. Reads a `Summary` only."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def call_label(name: str, call: int) -> str:
    """Call `call` (1, 2, ...) of module `name` as every table names it: `name`, `name #2`."""
    return name if call == 1 else f"{name} #{call}"


def shape_text(shape: Iterable[int]) -> str:
    """(64, 7, 7) -> '64×7×7'."""
    return "×".join(str(n) for n in shape)


def si(n: float, unit: str = "") -> str:
    """1.5e9 -> '1.50 G' (with unit)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.2f} {prefix}{unit}"
    return f"{n:g} {unit}".rstrip()


def render(s: Any, width: int = 100) -> str:  # a facts.Summary (facts imports this module)
    """The table (rich, exported as text), totals and lints below it. A module's second
    call is named `name #2`; a field the trace could not follow shows as '?'."""
    frozen = any(r.trainable != r.params for r in s.rows)
    table = Table(title=f"input {shape_text(s.input_size)}", title_justify="left", pad_edge=True)
    table.add_column("layer", overflow="fold")
    table.add_column("kind", overflow="fold")
    table.add_column("output", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    if frozen:
        table.add_column("trainable", justify="right", no_wrap=True)
    table.add_column("RF", justify="right", no_wrap=True)
    table.add_column("jump", justify="right", no_wrap=True)
    table.add_column("MACs", justify="right", no_wrap=True)
    for r in s.rows:
        # the model's own strings (a ModuleDict key "head[/b]", a class name) as Text: rich
        # would read "[...]" in them as markup, and raise on a closing tag it never opened
        name = Text(call_label(r.name or "(model)", r.call))
        cells = [name, Text(r.kind), shape_text(r.output_shape), f"{r.params:,}"]
        cells += [f"{r.trainable:,}"] if frozen else []
        unknown = r.receptive_field is None
        cells += ["?" if unknown else str(r.receptive_field), "?" if unknown else str(r.jump)]
        table.add_row(*cells, f"{r.macs:,}")
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(table)
    console.print(
        f"total params {s.total_params:,} (trainable {s.trainable_params:,}) · "
        f"MACs {s.total_macs:,} ({si(s.total_macs)}) · activations "
        f"{si(s.activation_bytes, 'B')} per image (float32, sum of the rows' outputs)",
        highlight=False,
    )
    if s.warnings:
        console.print(f"\n{len(s.warnings)} warning(s):", highlight=False)
        for w in s.warnings:
            console.print(f"[{w.code}] layer {w.layer}: {w.message}", highlight=False, markup=False)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"
