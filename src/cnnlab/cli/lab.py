"""`cnnlab lab`: run the notes' claims as experiments; write DIR/results.json and DIR/lab.html."""

from __future__ import annotations

import argparse
import time


def register(sub) -> None:
    p = sub.add_parser(
        "lab",
        help="run each claim of the CNN notes as an experiment with a verdict; write lab.html",
        description="Run the lab's experiments (each with a verdict rule fixed in code before "
        "it runs), saving each to DIR/results.json as it ends, then write DIR/lab.html.",
    )
    p.add_argument("--quick", action="store_true", help="tiny subsets, one seed (a few minutes)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    p.add_argument(
        "--out", default="lab", help="directory for results.json and lab.html (default: lab)"
    )
    p.add_argument("--seeds", type=int, help="seeds per experiment (default 3; --quick runs one)")
    p.add_argument("--resume", action="store_true", help="keep finished experiments in --out")
    p.add_argument(
        "--rerun", nargs="+", default=[], metavar="NAME", help="run these again (implies --resume)"
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: the nets are small)"
    )
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cnnlab.lab import experiments

    console = Console()
    chosen = experiments(args.only)
    if args.list:
        for e in chosen:
            console.print(f"{e.name:<14} {e.section:<10} {e.title}")
        return 0
    experiments(args.rerun)  # unknown names fail before anything runs
    left_out = [name for name in args.rerun if name not in {e.name for e in chosen}]
    if left_out:  # it would not run, and nothing said so
        from cnnlab.errors import ConfigError

        raise ConfigError(
            f"--rerun {' '.join(left_out)}: not among the experiments --only chose "
            f"({', '.join(e.name for e in chosen)}); add it to --only"
        )
    if args.quick and args.seeds not in (None, 1):  # the quick lab is one seed: never silently
        from cnnlab.errors import ConfigError

        raise ConfigError(
            f"--quick runs one seed, not --seeds {args.seeds}: drop --seeds, or drop --quick "
            f"for {args.seeds} seeds on the full subsets"
        )
    start = time.perf_counter()
    try:
        results = _run_with_progress(console, chosen, args)
    except KeyboardInterrupt:
        _page_of_what_finished(console, args.out, chosen)
        raise
    _print_table(console, chosen, results)
    from cnnlab.lab import write_page

    page = write_page(args.out, chosen, results)
    console.print(
        f"wrote {page} and {page.parent / 'results.json'} in {time.perf_counter() - start:.0f} s"
    )
    return 1 if results.failed else 0


def _page_of_what_finished(console, out: str, chosen) -> None:
    """On Ctrl-C, DIR/lab.html of the experiments finished so far: each is saved to
    results.json as it ends, but the page was written at the end only, so a lab stopped after
    hours had results and no page to read them on."""
    from cnnlab.errors import CnnlabError
    from cnnlab.lab import load_results, write_page

    try:
        results = load_results(out)
    except CnnlabError:
        return  # unreadable: the interrupt's own line says enough
    if results is not None and results.experiments:
        page = write_page(out, chosen, results)
        console.print(f"wrote {page} with the {len(results.experiments)} finished experiment(s)")


def _run_with_progress(console, chosen, args):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cnnlab.lab import run_lab

    columns = (
        TextColumn("{task.description:<32}"),
        BarColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
    )
    # started by the first experiment: a refusal before any (a results.json of other options,
    # --seeds 0) printed an empty 'lab 0:00:00' bar above its one line
    progress = Progress(*columns, console=console, transient=False)
    overall = progress.add_task("lab", total=len(chosen), note="")
    tasks = {}
    try:

        def on_start(e):
            if not tasks:
                progress.start()
            tasks[e.name] = progress.add_task(e.title, total=1.0, note="")

        def on_progress(e, done, total, text):
            progress.update(tasks[e.name], completed=done / max(total, 1e-9), note=text)

        def on_done(e, entry, error):
            note = entry["verdict"]["outcome"] if entry else f"failed: {error}"
            progress.update(tasks[e.name], completed=1.0, note=note)
            progress.advance(overall)
            if not console.is_terminal:  # piped: the bars are drawn once, at the end, so a
                # log of a 30-minute lab said nothing until then; a line per experiment instead
                took = f", {entry['seconds']:.1f} s" if entry else ""
                console.print(f"{e.name}: {note}{took}", highlight=False)

        results = run_lab(
            chosen,
            args.out,
            quick=args.quick,
            seeds=3 if args.seeds is None else args.seeds,
            resume=args.resume,
            rerun=args.rerun,
            threads=args.threads,
            on_start=on_start,
            on_progress=on_progress,
            on_done=on_done,
        )
        progress.update(overall, completed=len(chosen))
    finally:
        if tasks:  # one started it
            progress.stop()
    return results


def _print_table(console, chosen, results) -> None:
    from rich.table import Table

    colour = {"holds": "green", "does not hold": "red", "partly": "yellow"}
    caption = (  # the page's words: a learner reads the terminal first
        "Quick lab (tiny subsets, one seed, so every ± is '?': no spread measured): a smoke "
        "run, not evidence; `cnnlab lab` runs the full lab (3 seeds, bigger subsets)"
        if results.quick
        else "One seed, so every ± is '?': no spread measured (`cnnlab lab` runs 3 seeds)"
        if len(results.seeds) == 1
        else None
    )
    rows = []
    for e in chosen:
        entry = results.experiments.get(e.name)
        if entry is None:
            why = results.failed.get(e.name, "not run")
            rows.append((e.name, e.section, "[red]failed[/]", "", why))
            continue
        outcome = entry["verdict"]["outcome"]
        shown = f"[{colour.get(outcome, 'dim')}]{outcome}[/]"
        rows.append(
            (e.name, e.section, shown, f"{entry['seconds']:.1f}", entry["verdict"]["meaning"])
        )
    if console.width < WIDE_TABLE:
        _print_blocks(console, rows, caption)
        return
    table = Table(title="verdicts", caption=caption)
    for column in ("experiment", "notes", "verdict", "seconds", "what it means"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for row in rows:
        table.add_row(*row)
    console.print(table)


# A terminal narrower than this prints each verdict as a heading line and its sentence at the
# full width: the table's last column would get a quarter of an 80-column terminal (24
# characters: 305 lines for the quick lab's 14 sentences).
WIDE_TABLE = 120


def _print_blocks(console, rows, caption: str | None) -> None:
    """Each (name, notes, verdict, seconds, sentence) as "name (notes): verdict, seconds s"
    and the sentence below it, indented."""
    from rich.padding import Padding

    console.print("[bold]verdicts[/]")
    for name, section, shown, seconds, meaning in rows:
        took = f", {seconds} s" if seconds else ""
        console.print(f"\n[bold]{name}[/] ({section}): {shown}{took}", highlight=False)
        console.print(Padding(meaning, (0, 0, 0, 2)), highlight=False)
    if caption:
        console.print(f"\n[dim]{caption}[/]")
