"""The progress bar of the commands that run a long library loop (eval, predict, import,
explain --method smoothgrad, visualize --actmax, diagnose, probe, report, serve's start-up).

The library reports `progress(done, total, what)` (`cnnlab.inspect.progress`); here it becomes
one rich bar on stderr, transient (gone when the loop ends), and only when stderr is a
terminal: piped or redirected output, and --json, stay as they were. A loop that starts
(done falls, or another total) restarts the bar, so its time left is its own, and is drawn
at once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # cnnlab.inspect brings torch; the commands import this module at start-up
    from cnnlab.inspect.progress import Progress


def _console() -> Any:
    """The console bars are drawn on: stderr, so that stdout (tables, JSON) is untouched;
    None when stderr is no terminal (a bar redrawn in a log file is noise)."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def progress_bar(quiet: bool = False, console: Any = None) -> Iterator[Progress | None]:
    """A `progress(done, total, what)` callback drawing a transient bar, or None (quiet, or
    stderr not a terminal: nothing is drawn and the library skips its calls). `console`:
    another rich Console (a test's, with force_terminal=True)."""
    console = None if quiet else console or _console()
    if console is None:
        yield None
        return
    from rich import progress as rp

    columns = (  # the spinner turns through a long step (a report's part: minutes)
        rp.SpinnerColumn(),
        rp.TextColumn("{task.description}"),
        rp.BarColumn(),
        rp.MofNCompleteColumn(),
        rp.TimeElapsedColumn(),
        rp.TimeRemainingColumn(),
    )
    # redirect_stdout=False: what the user's model prints stays on stdout (rich would draw
    # it on the bar's stderr console while the bar shows)
    with rp.Progress(*columns, console=console, transient=True, redirect_stdout=False) as bar:
        task = bar.add_task("starting", total=None, start=False)
        last: dict[str, Any] = {"done": 0, "total": -1, "what": None}

        def report(done: int, total: int, what: str) -> None:
            known = total if total > 0 else None  # 0: not known in advance
            again = done < last["done"] or (done == last["done"] and what != last["what"])
            if again or total != last["total"]:  # another loop begins
                bar.reset(task, total=known, completed=done, description=what)
                bar.refresh()  # shown at once, not at the next tick: a new loop is news
            else:
                bar.update(task, completed=done, description=what)
            last.update(done=done, total=total, what=what)

        yield report
