"""`cnnlab train`'s progress bar shows dashes until the first step is measured: it read
'loss nan  acc 0.000  0 img/s' (the loop starts its loss field at NaN), as if the run had
diverged before it began. A NaN loss measured after a step stays visible."""

from __future__ import annotations

import io
import math

from rich.console import Console

from cnnlab.cli.train import _progress


def rendered(**fields) -> str:
    progress = _progress()
    progress.add_task("training", total=10, **fields)  # as train.loop._Bar adds it
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    console.print(progress.make_tasks_table(progress.tasks))
    return console.file.getvalue()


def test_the_bar_before_the_first_step_says_no_nan():
    text = rendered(loss=float("nan"), acc=0.0, ips=0.0)
    assert "nan" not in text.lower() and "loss -" in text, text


def test_the_bar_after_a_step_shows_what_was_measured():
    assert "loss 1.965  acc 0.455 374 img/s" in rendered(loss=1.9651, acc=0.4547, ips=374.3)
    from cnnlab.cli.train import bar_fields

    assert "nan" in bar_fields(math.nan, 0.1, 300.0)[0]
