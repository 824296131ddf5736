"""A stopped DDP rank must not hang the others: two CPU ranks under torchrun (gloo, one thread
each, digits), rank 1 paused with SIGSTOP after the first checkpoint. The truth: the clock
(rank 0 gone within CNNLAB_DDP_TIMEOUT plus a margin, not torch's 30 minutes), rank 0's own
stderr (torchrun's --log-dir keeps it apart), its exit code in torchrun's summary, the
checkpoint on disk, and a resume of it in ONE process that ends with every epoch's row.
Then, in-process: which backend errors are a lost rank (a table of gloo's and c10d's words,
and of errors that must keep their type), a peer that never joins, the CLI's exit code."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as torch_dist

from cnnlab.cli import main
from cnnlab.cli import train as cli_train
from cnnlab.errors import EXIT_RANK_LOST, RankLost
from cnnlab.train import checkpoint, distributed
from tiny_nets import DDP_SPEC

pytestmark = pytest.mark.usefixtures("one_thread")  # the ranks' thread count, as resumed here

TIMEOUT = 8  # seconds; short for the test, long enough for two ranks starting on 2 busy cores
MARGIN = 20  # seconds for the error, the teardown and the interpreter's exit on a loaded box
EPOCHS = 8  # the pause lands after epoch 1's checkpoint, with 7 epochs (> 1 s) still to go


def _children(pid: int) -> list[int]:
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _rank_pids(launcher: int) -> dict[int, int]:
    """{rank: pid} of the workers torchrun started (their RANK environment variable)."""
    ranks = {}
    for pid in _children(launcher):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
        if "RANK" in env:
            ranks[int(env["RANK"])] = pid
    return ranks


def _alive(pid: int) -> bool:
    """Running or stopped; not exited (a zombie waiting for torchrun counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait_for(condition, seconds: float, launcher: subprocess.Popen) -> float:
    start = time.monotonic()
    while not condition():
        assert launcher.poll() is None, launcher.stderr.read()[-3000:]
        assert time.monotonic() - start < seconds, "waited too long"
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_paused_rank_stops_the_other_in_time_and_the_run_resumes_in_one_process(tmp_path, capsys):
    spec, out, logs = tmp_path / "tiny.yaml", tmp_path / "run", tmp_path / "logs"
    spec.write_text(DDP_SPEC)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "--log-dir", str(logs), "--redirects", "3",
        "-m", "cnnlab.cli", "train", str(spec), "--data", "digits", "--epochs", str(EPOCHS),
        "--batch-size", "64", "--out", str(out), "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CNNLAB_DDP_TIMEOUT": str(TIMEOUT)}
    launcher = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ranks = {}
    try:
        _wait_for((out / "checkpoint.json").is_file, 180, launcher)
        ranks = _rank_pids(launcher.pid)
        os.kill(ranks[1], signal.SIGSTOP)
        waited = _wait_for(lambda: not _alive(ranks[0]), TIMEOUT + MARGIN, launcher)
    finally:
        if ranks and _alive(ranks[1]):
            os.kill(ranks[1], signal.SIGKILL)  # torchrun would, after its own grace period
        _, launcher_err = launcher.communicate(timeout=120)
    assert TIMEOUT - 1 <= waited < TIMEOUT + MARGIN  # the knob fired, not something else

    err = next(logs.glob("*/attempt_0/0/stderr.log")).read_text().strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("cnnlab train: rank 0 of 2: another rank stopped answering")
    assert f"CNNLAB_DDP_TIMEOUT={TIMEOUT} s" in err and "--resume" in err
    code = re.search(rf"exitcode\s*:\s*(-?\d+) \(pid: {ranks[0]}\)", launcher_err.decode())
    assert code and int(code.group(1)) == EXIT_RANK_LOST, launcher_err.decode()[-3000:]

    _, state = checkpoint.load_checkpoint(out)  # whole: loads, finite, its rows inside
    assert 1 <= state["epoch"] < EPOCHS and state["world_size"] == 2
    assert [r["epoch"] for r in state["metrics"]] == list(range(1, state["epoch"] + 1))

    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "resumed with world size 1 where the checkpoint was saved with 2" in said
    assert "will differ from an uninterrupted run" in said
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    assert all(math.isfinite(r["train_loss"]) for r in rows) and "test_acc" in rows[-1]
    resumes = json.loads((out / "config.json").read_text())["resumes"]
    assert resumes[-1]["epoch"] == state["epoch"] and "world size 1" in resumes[-1]["changed"][0]


# --- which errors are a lost rank: the backends' words, and nothing else -------------------

TWO = distributed.Dist(rank=1, world_size=2, timeout=5.0)
GLOO = "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:129] "
LOST = {
    "gloo send timeout": RuntimeError(GLOO + "Timed out waiting 5000ms for send operation"),
    "gloo recv timeout": RuntimeError(GLOO + "Timed out waiting 5000ms for recv operation"),
    "peer killed": RuntimeError(
        "[../gloo/transport/tcp/pair.cc:534] Read error [127.0.0.1]:1930: Connection reset by "
        "peer. This is typically caused by a remote worker hanging. GLHF!"
    ),
    "peer closed": RuntimeError("Connection closed by peer [127.0.0.1]:29500"),
    "gloo pair closed": RuntimeError("Application timeout caused pair closure"),  # no prefix
    "gloo socket closed": RuntimeError("Socket closed [127.0.0.1]:4242"),
    "gloo remote closed": RuntimeError("Remote peer closed the connection."),
    "c10d error": torch_dist.DistBackendError("NCCL communicator was aborted"),
}
NOT_LOST = {
    "a bug": RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x2)"),
    "a DataLoader's timeout": RuntimeError("DataLoader timed out after 5 seconds"),
    "a port in use": torch_dist.DistNetworkError(
        "The server socket has failed to listen on any local network address. port: 29500, "
        "code: -98, name: EADDRINUSE, message: address already in use"
    ),
    "bad input": ValueError("timed out"),
    "Ctrl-C": KeyboardInterrupt(),
}


@pytest.mark.parametrize("name", LOST)
def test_the_backends_errors_of_a_lost_peer_become_one_line_naming_rank_and_knob(name, tmp_path):
    lost = distributed.as_rank_lost(LOST[name], TWO, tmp_path)
    assert isinstance(lost, RankLost) and isinstance(lost, RuntimeError)
    assert lost.__cause__ is LOST[name]
    text = str(lost)
    assert len(text.splitlines()) == 1 and text.startswith("rank 1 of 2: ")
    assert "CNNLAB_DDP_TIMEOUT=5 s" in text and "GLHF" not in text and ".cc:" not in text
    assert "no checkpoint was saved" in text and "--force" in text  # none in tmp_path yet
    (tmp_path / "checkpoint.safetensors").write_bytes(b"")
    assert "--resume" in str(distributed.as_rank_lost(LOST[name], TWO, tmp_path))
    assert "nothing was saved" in str(distributed.as_rank_lost(LOST[name], TWO, None))


@pytest.mark.parametrize("name", NOT_LOST)
def test_other_errors_keep_their_own_type(name):
    assert distributed.as_rank_lost(NOT_LOST[name], TWO) is NOT_LOST[name]


def test_outside_a_distributed_run_nothing_is_a_lost_rank():
    error = LOST["gloo send timeout"]
    assert distributed.as_rank_lost(error, distributed.Dist()) is error


def test_the_cli_gives_a_lost_rank_its_own_exit_code_and_one_line(monkeypatch, capsys):
    """Not 2 (bad input) nor 3 (diverged): a scheduler can tell a lost peer apart."""
    lost = distributed.as_rank_lost(LOST["gloo recv timeout"], TWO, None)

    def raises(*args, **kwargs):
        raise lost

    monkeypatch.setattr(cli_train, "run_training", raises)
    assert main(["train", "--preset", "fast", "--out", "x", "--quiet"]) == EXIT_RANK_LOST == 4
    err = capsys.readouterr().err.strip()
    assert err == f"cnnlab train: {lost}" and len(err.splitlines()) == 1


def test_a_rank_that_never_joins_is_one_line_after_the_timeout(monkeypatch):
    """Rank 0 of 2 alone, its peer never started: c10d's store gives up after the timeout."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    for name, value in {
        "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port), "CNNLAB_DDP_TIMEOUT": "1",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    with pytest.raises(RankLost, match=r"rank 0 of 2: the other ranks did not join .*=1 s") as e:
        distributed.setup("cpu")
    assert time.monotonic() - started < 30 and len(str(e.value).splitlines()) == 1
    assert not torch_dist.is_initialized()


def test_a_port_in_use_at_start_is_not_a_lost_rank(monkeypatch):
    """The rendezvous failing for another reason keeps torch's own error (and its advice)."""
    error = NOT_LOST["a port in use"]

    def fails(*args, **kwargs):
        raise error

    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch_dist, "init_process_group", fails)
    with pytest.raises(torch_dist.DistNetworkError) as caught:
        distributed.setup("cpu")
    assert caught.value is error
