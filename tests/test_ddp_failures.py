"""A rank that fails tells the other ranks at once: two CPU ranks (gloo, forked from this
process, as torchrun would start them: WORLD_SIZE, RANK, MASTER_*), each running
`cnnlab train` on digits, one of them made to fail at a point where it works alone while
the other waits: rank 0's writes (config.json at the start, an epoch's checkpoint, the
final weights and metrics), its epoch callback, one rank's first-step check, its shard of
the test evaluation, its model checks before the first step.

Each rank lives on after its command returns (as train() called from a notebook or a sweep
does), so the other learns of the failure from the ranks' own words, not from a closed
socket. The truth: the clock (the other rank returns within FAST seconds of the failure,
against CNNLAB_DDP_TIMEOUT=TIMEOUT before), each rank's stderr (the failed rank's own line
or error; the other's one line naming that rank and its words, exit 4), and the run
directory (the last good checkpoint loads, at the epoch before the failure)."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnlab.errors import EXIT_BAD_INPUT, EXIT_RANK_LOST
from cnnlab.train import checkpoint, distributed
from tiny_nets import DDP_SPEC, free_port

pytestmark = pytest.mark.usefixtures("one_thread", "warm")

TIMEOUT = 12  # CNNLAB_DDP_TIMEOUT: how long a rank waited for a failed one before
FAST = 5.0  # seconds from the failure to the other rank's return (gloo's round trip: ms)
EPOCHS = 2
NO_SPACE = "No space left on device"
NO_MEMORY = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1048576 bytes"


@pytest.fixture(scope="module")
def warm():
    """What every rank imports and reads, done once here: the forked ranks inherit it (a
    rank's own imports of torch._dynamo, by the optimizer, and of digits took 9 s)."""
    import torch._dynamo  # noqa: F401

    from cnnlab.cli import train  # noqa: F401
    from cnnlab.data import load_dataset

    load_dataset("digits")


def _stamp(where: Path) -> None:
    where.write_text(repr(time.time()))


def _fail_write(name: str, nth: int, stamp: Path) -> None:
    """This rank's `nth` write of `name` in the run directory fails as on a full disk
    (checkpoint._write_all, the seam atomic_write writes through)."""
    real, seen = checkpoint._write_all, [0]

    def write_all(file, data):
        if Path(file.name).name.startswith(f".{name}.tmp-"):
            seen[0] += 1
            if seen[0] == nth:
                _stamp(stamp)
                raise OSError(errno.ENOSPC, NO_SPACE)
        real(file, data)

    checkpoint._write_all = write_all


def _fail_call(module, name: str, error: BaseException, stamp: Path) -> None:
    """`module.name` raises `error` on this rank's first call."""

    def fails(*args, **kwargs):
        _stamp(stamp)
        raise error

    setattr(module, name, fails)


def _inject(case: str, stamp: Path) -> None:
    from cnnlab.cli import train as cli_train
    from cnnlab.train import guard, measure

    if case in WRITES:
        _fail_write(*WRITES[case], stamp)
    elif case == "epoch callback":  # the terminal gone: printing the epoch's line fails
        _fail_call(cli_train, "_print_epoch", OSError(errno.EIO, "Input/output error"), stamp)
    elif case == "first-step check":
        _fail_call(guard, "probability_note", RuntimeError(NO_MEMORY), stamp)
    elif case == "test evaluation":
        _fail_call(measure, "evaluate_tensors", RuntimeError(NO_MEMORY), stamp)
    elif case == "model checks":  # the forward check_fit makes before any step
        _fail_call(torch.nn.Conv2d, "forward", RuntimeError(NO_MEMORY), stamp)


def _rank(rank: int, failing: int, case: str, port: int, tmp: Path, argv: list[str]) -> None:
    """One rank (a forked child): its stderr to tmp/rankN.err, its exit code and the time it
    returned to tmp/rankN.json; then it lives on until the test kills it."""
    try:
        os.environ.update(
            WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port), CNNLAB_DDP_TIMEOUT=str(TIMEOUT), OMP_NUM_THREADS="1",
        )  # fmt: skip
        err = open(tmp / f"rank{rank}.err", "w", buffering=1)  # noqa: SIM115 - the child's
        os.dup2(err.fileno(), 2)
        sys.stderr, sys.stdout = err, open(os.devnull, "w")  # noqa: SIM115
        torch.set_num_threads(1)
        if rank == failing:
            _inject(case, tmp / "failed")
        from cnnlab.cli import main

        try:
            code = main(argv)
        except Exception as error:  # not bad input: the CLI's traceback, here its words
            code = f"{type(error).__name__}: {error}"
        said = {"code": code, "returned": time.time()}
        (tmp / f"rank{rank}.json").write_text(json.dumps(said))
        time.sleep(3 * TIMEOUT)
    finally:
        os._exit(0)


def _run(tmp_path: Path, case: str, failing: int, quiet: bool = True) -> dict:
    """Both ranks of `cnnlab train` with `case` failing on rank `failing` -> {rank: (code,
    stderr lines, seconds from the failure to its return)}."""
    spec, out = tmp_path / "tiny.yaml", tmp_path / "run"
    spec.write_text(DDP_SPEC)
    argv = ["train", str(spec), "--data", "digits", "--epochs", str(EPOCHS)]
    argv += ["--batch-size", "64", "--out", str(out)] + ["--quiet"] * quiet
    fork, port = multiprocessing.get_context("fork"), free_port()
    ranks = [
        fork.Process(target=_rank, args=(r, failing, case, port, tmp_path, argv)) for r in (0, 1)
    ]
    for process in ranks:
        process.start()
    try:
        done = [tmp_path / f"rank{r}.json" for r in (0, 1)]
        start = time.monotonic()
        while not all(p.is_file() for p in done) and time.monotonic() - start < 90 + TIMEOUT:
            time.sleep(0.05)
    finally:
        for process in ranks:
            process.kill()
            process.join()
    failed_at = float((tmp_path / "failed").read_text())
    found = {}
    for r, path in enumerate(done):
        assert path.is_file(), f"rank {r} did not return: {(tmp_path / f'rank{r}.err').read_text()}"
        said = json.loads(path.read_text())
        lines = (tmp_path / f"rank{r}.err").read_text().strip().splitlines()
        found[r] = (said["code"], lines, said["returned"] - failed_at)
    return found


def _other_rank_stopped_at_once(found: dict, failing: int, words: str) -> None:
    other = 1 - failing
    code, lines, seconds = found[other]
    assert seconds < FAST, f"rank {other} returned {seconds:.1f} s after the failure: {lines}"
    assert code == EXIT_RANK_LOST, (code, lines)
    assert lines == [f"cnnlab train: rank {other} of 2: rank {failing} failed: {words}"]


# case -> (file, which write of it fails on rank 0): config.json is written once at the start,
# checkpoint.safetensors once an epoch, metrics.jsonl at the start, with every checkpoint and
# at the end
WRITES = {
    "config.json": ("config.json", 1),
    "epoch 2 checkpoint": ("checkpoint.safetensors", 2),
    "final weights": ("model.safetensors", 1),
    "final metrics": ("metrics.jsonl", EPOCHS + 2),
}
SAVED = {"config.json": None, "epoch 2 checkpoint": 1, "final weights": 2, "final metrics": 2}


@pytest.mark.parametrize("case", WRITES)
def test_a_failed_write_on_rank_0_stops_rank_1_at_once_and_keeps_the_last_checkpoint(
    tmp_path, case
):
    found = _run(tmp_path, case, failing=0)
    code, lines, _ = found[0]
    path = tmp_path / "run" / WRITES[case][0]
    assert code == EXIT_BAD_INPUT and len(lines) == 1, (code, lines)
    line = lines[0]
    assert line.startswith(f"cnnlab train: error: could not write {path}: {NO_SPACE}"), line
    assert "free some space" in line
    _other_rank_stopped_at_once(found, 0, line.removeprefix("cnnlab train: error: "))
    saved = SAVED[case]
    if saved is None:
        assert "no checkpoint was saved yet" in line
        assert not (tmp_path / "run" / checkpoint.CHECKPOINT_TENSORS).exists()
        return
    assert f"checkpoint (epoch {saved}, step 0) is whole on disk" in line
    _, state = checkpoint.load_checkpoint(tmp_path / "run")  # whole: loads, finite
    assert (state["epoch"], state["step"]) == (saved, 0)
    assert [row["epoch"] for row in state["metrics"]] == list(range(1, saved + 1))


def test_rank_0s_epoch_callback_failing_stops_rank_1_at_once(tmp_path):
    """The CLI's epoch line (printed by rank 0 alone) fails: the terminal is gone."""
    found = _run(tmp_path, "epoch callback", failing=0, quiet=False)
    assert found[0][0] == "OSError: [Errno 5] Input/output error"
    _other_rank_stopped_at_once(found, 0, "OSError: [Errno 5] Input/output error")
    _, state = checkpoint.load_checkpoint(tmp_path / "run")  # epoch 1's, written before
    assert state["epoch"] == 1


@pytest.mark.parametrize("case", ["first-step check", "test evaluation"])
def test_rank_1_failing_on_its_own_stops_rank_0_at_once(tmp_path, case):
    """Rank 1 out of memory where each rank works on its own: its first step's check of the
    logits (`guard.probability_note`), its shard of the test split."""
    found = _run(tmp_path, case, failing=1)
    assert found[1][0] == f"RuntimeError: {NO_MEMORY}"
    _other_rank_stopped_at_once(found, 1, f"RuntimeError: {NO_MEMORY}")


def test_rank_1s_model_check_failing_stops_rank_0_at_once(tmp_path):
    """Rank 1 out of memory in the forward that checks the model fits the data, before any
    step: its own line (exit 2), and rank 0 stops naming it."""
    found = _run(tmp_path, "model checks", failing=1)
    code, lines, _ = found[1]
    assert code == EXIT_BAD_INPUT and len(lines) == 1, (code, lines)
    assert lines[0].startswith("cnnlab train: error: spec 'tiny' cannot run on 1×8×8 images")
    assert NO_MEMORY in lines[0]
    _other_rank_stopped_at_once(found, 1, lines[0].removeprefix("cnnlab train: error: "))


def _leave_right_after_a_collective(rank: int, ports: list[int], done: Path) -> None:
    """A forked rank: join, wrap a model in DDP, settle, leave, free the DDP model (its
    reducer held the group's last reference), once per port; tmp/doneN counts the rounds."""
    try:
        os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank))
        os.environ.update(MASTER_ADDR="127.0.0.1", CNNLAB_DDP_TIMEOUT=str(TIMEOUT))
        torch.set_num_threads(1)
        for i, port in enumerate(ports):
            os.environ["MASTER_PORT"] = str(port)
            dist = distributed.setup("cpu")
            net = distributed.wrap(torch.nn.Linear(2, 2), dist)
            distributed.settle(None, dist)  # the run's last collective
            distributed.teardown(dist)
            del net
            done.write_text(str(i + 1))
    finally:
        os._exit(0)


def test_leaving_the_group_right_after_a_collective_does_not_deadlock(tmp_path):
    """gloo's worker frees a finished collective's tensors taking the GIL; the group's
    destructor, run by the DDP reducer's release with the GIL held, joins that worker.
    Destroyed at teardown, 1 round in 3 deadlocked here; kept until the next teardown, none."""
    rounds = 12
    ports = [free_port() for _ in range(rounds)]
    fork = multiprocessing.get_context("fork")
    done = [tmp_path / f"done{r}" for r in (0, 1)]
    ranks = [
        fork.Process(target=_leave_right_after_a_collective, args=(r, ports, done[r]))
        for r in (0, 1)
    ]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=60)
    for process in ranks:
        process.kill()
        process.join()
    assert [p.read_text() if p.is_file() else "0" for p in done] == [str(rounds)] * 2
