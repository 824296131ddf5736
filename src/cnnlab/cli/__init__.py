"""The `cnnlab` command. Thin: parses arguments, calls the library, prints.

Each module in this package is one command (or a few close ones) and exposes
`register(subparsers)`, which adds its parser and sets `run=function(args) -> int | None`.
Bad input raises `CnnlabError` in the library; here it becomes one line on stderr and exit 2;
a diverged training (`TrainingDiverged`) one line and exit 3.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import os
import pkgutil
import re
import signal
import sys
import threading
import time
import warnings
from typing import NoReturn

from cnnlab.errors import (
    EXIT_BAD_INPUT,
    EXIT_DIVERGED,
    EXIT_RANK_LOST,
    CnnlabError,
    TrainingDiverged,
)
from cnnlab.train.config import FieldError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other bad input (argparse prints
    the whole usage first); sub-commands' parsers are of this class too."""

    def error(self, message: str):
        message += _meant_choice(message)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.HelpFormatter):
    """argparse's help, but the column of the commands' help is measured with the indent the
    command names are printed at: argparse measures them two columns short, so a name of 9
    letters (visualize) had its help pushed to the next line."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if action.help is argparse.SUPPRESS:
            return
        for sub in self._iter_indented_subactions(action):  # indented while it yields
            length = len(self._format_action_invocation(sub)) + self._current_indent
            self._action_max_length = max(self._action_max_length, length)


def _meant_choice(message: str) -> str:
    """'; did you mean train?' for argparse's "invalid choice: 'trian' (choose from ...)",
    the nearest spelling among the choices (difflib), else ''."""
    match = re.search(r"invalid choice: '(.*)' \(choose from (.*)\)$", message)
    if match is None:
        return ""
    choices = re.findall(r"'([^']*)'|([^\s,]+)", match[2])  # quoted names, or numbers
    close = difflib.get_close_matches(match[1], [a or b for a, b in choices], n=1)
    return f"; did you mean {close[0]}?" if close else ""


def _parser() -> argparse.ArgumentParser:
    from cnnlab import __version__

    parser = _Parser(
        prog="cnnlab",
        formatter_class=_Formatter,
        description="Design, train, diagnose and explain convolutional image classifiers.",
        epilog="New here? `cnnlab demo --data digits` runs the whole workflow in a minute; "
        "every command takes --help.",
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue  # __main__ runs main() on import
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    _in_workflow_order(sub)
    for listed in sub._choices_actions:  # `cnnlab eval --help` said nothing of what eval does
        command = sub.choices[listed.dest]
        command.description = command.description or listed.help
    return parser


# `cnnlab --help` lists the commands in the order a user meets them: try it, look at the data
# and the architecture, train, score and use the run, look inside it, then the wider tools.
# A command missing here is listed after these, by name.
WORKFLOW = (
    "demo", "data", "summary", "train", "eval", "predict", "explain", "visualize",
    "diagnose", "probe", "report", "serve", "lab", "import",
)  # fmt: skip


def _in_workflow_order(sub: argparse._SubParsersAction) -> None:
    """Reorder the registered commands (argparse lists them as they were added; the modules
    register by file name, and explain.py adds visualize and probe) to WORKFLOW's order."""

    def rank(name: str) -> tuple[int, str]:
        return (WORKFLOW.index(name) if name in WORKFLOW else len(WORKFLOW), name)

    sub._choices_actions.sort(key=lambda action: rank(action.dest))
    ordered = sorted(sub.choices, key=rank)
    sub.choices.update({name: sub.choices.pop(name) for name in ordered})


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """parse_args, but an unknown option is named by the command's own parser, so the hint
    is `cnnlab explain --help` (its options), not `cnnlab --help` (the list of commands)."""
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps no other handle
    words = sys.argv[1:] if argv is None else argv
    _refuse_stray_options(parser, words)
    args, unknown = parser.parse_known_args(argv)
    _refuse_split_pair(commands[args.command], args, words)
    if unknown:
        before = words[: words.index(args.command)]  # `cnnlab --foo eval`: not eval's option
        blamed = parser if any(word in before for word in unknown) else commands[args.command]
        blamed.error(f"unrecognized arguments: {' '.join(unknown)}{_meant_option(blamed, unknown)}")
    _refuse_empty(commands[args.command], args)
    return args


def _refuse_stray_options(parser: argparse.ArgumentParser, words: list[str]) -> None:
    """Options alone, none of them cnnlab's (`cnnlab --versoin`), are named as unrecognized,
    with the nearest option: argparse checks for the missing command first, and told a
    mistyped --version that a command is required."""
    known = {o for action in parser._actions for o in action.option_strings}
    stray = [w for w in words if w.split("=")[0] not in known]
    if words and stray and all(w.startswith("-") for w in words):
        parser.error(f"unrecognized arguments: {' '.join(stray)}{_meant_option(parser, stray)}")


def _refuse_split_pair(
    command: argparse.ArgumentParser, args: argparse.Namespace, words: list[str]
) -> None:
    """`--model-arg width 16` is named as a pair written in two words: argparse gives the
    option 'width' alone and the 16 to the next slot, so the user heard of a spec file '16'
    or an unrecognized 16, not of the missing '='. A name with no word after it is left to
    parse_model_ref, which names it with the factory."""
    for pair in getattr(args, "model_arg", None) or []:
        after = words[words.index(pair) + 1 :] if pair in words else []
        if "=" in pair or not after or after[0].startswith("-"):
            continue
        value = after[0]
        command.error(
            f"--model-arg {pair!r} is not name=value: write the pair as one word, "
            f"--model-arg {pair}={value}"
        )


def _meant_option(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """'; did you mean --epochs?' for the first unknown option (`--epcohs`, `--topk`) near
    one of the parser's own (difflib), else ''."""
    options = [o for action in parser._actions for o in action.option_strings]
    for word in unknown:
        if word.startswith("--"):
            close = difflib.get_close_matches(word.split("=")[0], options, n=1, cutoff=0.75)
            if close:
                return f"; did you mean {close[0]}?"
    return ""


def _refuse_empty(command: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """An empty value (`--data "$DATA"` with DATA unset) is a usage error naming the
    argument: no option or argument of cnnlab means anything by "", and a path "" is the
    working directory (`--data ""` read it as an image folder)."""
    for action in command._actions:
        value = getattr(args, action.dest, None)
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            name = "/".join(action.option_strings) or action.metavar or action.dest.upper()
            command.error(f"argument {name}: empty value; give it one (an unset shell variable?)")


def _terminate(signum, frame) -> None:
    """SIGTERM (kill, a scheduler's stop) is treated as Ctrl-C: training checkpoints and
    says so, any other command stops with one line (exit 130), never silently with 143;
    but a serving `cnnlab serve` ends normally on it ("stopped", exit 0: serve._serve)."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main else None
    try:
        return _main(argv)
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    command, parser, args = "cnnlab", None, None
    try:
        parser = _parser()  # inside: a Ctrl-C while modules import is one line
        args = _parse(parser, argv)
        command = f"cnnlab {args.command}"
        with _stance(args.command):
            code = args.run(args)
    except FieldError as error:
        print(f"{command}: error: {_as_option(parser, args, error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CnnlabError as error:
        print(f"{command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingDiverged as error:  # valid options, a run that blew up: not exit 2
        print(f"{command}: diverged: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except BrokenPipeError:  # `cnnlab ... | head`: the reader left; not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's flush quiet
        return 0
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def _as_option(
    parser: argparse.ArgumentParser | None, args: argparse.Namespace | None, error: FieldError
) -> str:
    """A refused TrainConfig field said as the option the user typed ("--weight-decay must be
    a finite number, got inf": "weight_decay" is a name only a Python caller writes); as the
    field where no option of the command gave the value (a run's config.json on --resume)."""
    if parser is None or args is None:
        return str(error)
    command = parser._subparsers._group_actions[0].choices[args.command]
    for action in command._actions:
        given = getattr(args, action.dest, None) is not None
        if action.dest == error.field and action.option_strings and given:
            return f"{action.option_strings[0]} {error.problem}"
    return str(error)


# Commands that train keep the user's torch.compile; the others run compiled code eagerly.
_COMPILING = {"train", "demo", "lab"}


def _stance(command: str) -> contextlib.AbstractContextManager:
    """torch.compile'd code of the user's model (a decorated forward, a compiled function)
    runs eagerly in a command that only reads the model (as `load_run` unwraps compiled
    modules): eval, diagnose and summary of an 8×8 net compiled graphs for each batch shape
    (9.5 s, 17 s; summary failed inside dynamo), for a few batches. The stance is entered
    once the model's code has imported torch._dynamo (`reading_eagerly`): importing it for
    a model that compiles nothing cost every such command 1.3-1.9 s. On torch < 2.6 (no
    torch.compiler.set_stance) compiled code stays compiled."""
    if command in _COMPILING:
        return contextlib.nullcontext()
    from cnnlab.inspect.preserve import reading_eagerly  # torch: the command needs it next

    stack = contextlib.ExitStack()
    stack.enter_context(reading_eagerly())
    stack.enter_context(warnings.catch_warnings())
    # A reentrant torch.utils.checkpoint warns on every forward whose inputs need no gradient,
    # which is every forward of a command that only reads the model (eval, predict) and is
    # right there; in training (not filtered) it means layers that will not learn.
    warnings.filterwarnings("ignore", message=_NO_GRAD_CHECKPOINT)
    return stack


_NO_GRAD_CHECKPOINT = "None of the inputs have requires_grad=True"


def entry() -> NoReturn:
    """The `cnnlab` command: main() as the process's exit code. After a lost DDP rank the
    process leaves at once (os._exit, output flushed), as does a rank that failed on its own
    (exit 2): the broken process group's C++ threads cannot be joined at interpreter exit,
    where std::terminate would add "terminate called without an active exception" to the
    one line and abort (SIGABRT, which torchrun then reported in place of exit 2). So too after
    an interrupt that left requests of `cnnlab serve` running in its worker threads (a forced
    stop during an activation maximisation): the exit waited for them, silent, and a Ctrl-C
    then added "Exception ignored in ... threading" and that abort. Nothing is lost: serve's
    uploads, probes and caches live in memory (RUN/explorer/ is written before it serves);
    only an upload being decoded then leaves its temporary file (upload._written). A torchrun
    rank that succeeded leaves so too: the same teardown aborted now and then after a
    finished run (2 of ~53 looped runs; torchrun then reported the rank failed), its run
    directory written and closed before."""
    code = main()
    if code == EXIT_RANK_LOST:
        _after_the_failed_rank()
    a_rank = os.environ.get("WORLD_SIZE", "1").strip() not in ("", "1")
    if a_rank or (code == 130 and _serving_threads()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


# Seconds a rank that lost another waits, under torchrun, before it exits: the failed rank's
# exit (its interpreter's shutdown) took 0.9-1.5 s on 2 busy cores, and torchrun's monitor
# looks every 0.1 s; its SIGTERM ends the wait as soon as it saw that exit.
RANK_LOST_GRACE = 5.0


def _after_the_failed_rank() -> None:
    """Under torchrun, a rank that lost another (a RankLost, its line printed) lets that
    rank exit first: torchrun's end summary names as the root cause the first rank it sees
    exit with an error and shows the ranks it then stops as SIGTERM'd (-15), so a rank that
    heard of a failure at once and left would be named in place of the rank that failed.
    torchrun's SIGTERM, sent once it saw the failed rank exit, ends the wait (the CLI's own
    handler is gone by now); a failed rank that never exits (paused) costs RANK_LOST_GRACE
    seconds more. Outside torchrun nothing would end the wait: none."""
    if os.environ.get("TORCHELASTIC_RUN_ID"):
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(RANK_LOST_GRACE)


def _serving_threads() -> bool:
    """Whether threads where a FastAPI route runs (anyio's workers) are alive: `cnnlab serve`
    stopped with requests still running in them, which the interpreter's exit would join."""
    return any(t.name == "AnyIO worker thread" for t in threading.enumerate())


if __name__ == "__main__":
    entry()
