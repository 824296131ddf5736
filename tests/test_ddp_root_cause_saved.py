"""A diverged run's message names the last checkpoint: on every rank of a distributed run,
the one rank 0 wrote (the truth: checkpoint.saved_position of the run directory), not the
position the rank itself last saved (ranks other than 0 write none). Two CPU ranks (gloo,
forked from this process, as torchrun would start them) of `cnnlab train` on digits."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnlab.errors import EXIT_DIVERGED
from cnnlab.train import checkpoint
from tiny_nets import DDP_SPEC, free_port

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def warm():
    """What every forked rank imports and reads, done once here."""
    import torch._dynamo  # noqa: F401

    from cnnlab.cli import train  # noqa: F401
    from cnnlab.data import load_dataset

    load_dataset("digits")


def _diverging_rank(rank: int, port: int, tmp: Path, argv: list[str]) -> None:
    """One rank (a forked child, as torchrun starts it); rank 0 sees the loss diverge at the
    first step after the run's first checkpoint is on disk (each step's flags are OR-ed over
    the ranks, so both stop there). Its exit code and stderr go to tmp/rankN.*."""
    try:
        os.environ.update(
            WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port), CNNLAB_DDP_TIMEOUT="12", OMP_NUM_THREADS="1",
        )  # fmt: skip
        err = open(tmp / f"rank{rank}.err", "w", buffering=1)  # noqa: SIM115 - the child's
        os.dup2(err.fileno(), 2)
        sys.stderr, sys.stdout = err, open(os.devnull, "w")  # noqa: SIM115
        torch.set_num_threads(1)
        if rank == 0:
            from cnnlab.train import guard

            written = tmp / "run" / checkpoint.CHECKPOINT_TENSORS
            guard.is_diverged = lambda loss, limit: written.is_file()
        from cnnlab.cli import main

        code = main(argv)
        (tmp / f"rank{rank}.json").write_text(json.dumps({"code": code}))
    finally:
        os._exit(0)


@pytest.mark.usefixtures("warm")
def test_every_rank_names_the_checkpoint_rank_0_wrote_when_the_run_diverges(tmp_path):
    (tmp_path / "tiny.yaml").write_text(DDP_SPEC)
    argv = ["train", str(tmp_path / "tiny.yaml"), "--data", "digits", "--epochs", "3"]
    argv += ["--batch-size", "64", "--out", str(tmp_path / "run"), "--quiet"]
    fork, port = multiprocessing.get_context("fork"), free_port()
    ranks = [fork.Process(target=_diverging_rank, args=(r, port, tmp_path, argv)) for r in (0, 1)]
    for process in ranks:
        process.start()
    start = time.monotonic()
    for process in ranks:
        process.join(timeout=max(1.0, 90 - (time.monotonic() - start)))
    for process in ranks:
        process.kill()
        process.join()
    on_disk = checkpoint.saved_position(tmp_path / "run")
    assert on_disk is not None and on_disk != (0, 0)
    kept = f"the last checkpoint (epoch {on_disk[0]}, step {on_disk[1]}"
    for rank in (0, 1):
        lines = (tmp_path / f"rank{rank}.err").read_text().strip().splitlines()
        code = json.loads((tmp_path / f"rank{rank}.json").read_text())["code"]
        assert code == EXIT_DIVERGED and len(lines) == 1, (rank, code, lines)
        assert lines[0].startswith("cnnlab train: diverged: "), lines
        assert kept in lines[0] and str(tmp_path / "run") in lines[0], (rank, lines[0])
