"""Data-parallel training under torchrun: one process per device, gradients averaged by DDP.

`torchrun --nproc_per_node=N -m cnnlab.cli train ...` sets WORLD_SIZE, RANK and LOCAL_RANK;
`setup()` reads them and joins the process group (gloo on CPU, NCCL on CUDA). Each rank
trains on its own shard of every epoch (the Loader's rank/world_size), sums of losses and
counts are all-reduced so every rank sees the same metrics, and rank 0 alone writes files.
Without torchrun (WORLD_SIZE unset or 1) every function here is a cheap no-op.

A rank that stops (killed, paused, out of memory) would leave the others waiting in an
all-reduce for torch's default of 30 minutes; the process group here times out after
`CNNLAB_DDP_TIMEOUT` seconds (default 300) instead, and `as_rank_lost` turns the backend's
error (gloo: "[...unbound_buffer.cc:129] Timed out waiting 5000ms for send operation to
complete", "Connection closed by peer") into a RankLost naming the rank and the knob.

A rank that fails (rank 0's write to a full disk, a user's callback, one rank's shard) left
the others in their next collective until its process exited, or for the whole timeout
when it lives on (train() called from a notebook or a sweep). So the work a rank does on
its own ends `together`: one flag per rank all-reduced, then the failed rank's own line
broadcast, and the others raise a RankLost saying which rank failed and why, at once.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as torch_dist
from torch import nn

from cnnlab.errors import CnnlabError, ConfigError, RankLost, TrainingDiverged
from cnnlab.train.checkpoint import CHECKPOINT_TENSORS
from cnnlab.train.fit import graph_walk

# What gloo, NCCL and c10d say when a peer stopped answering or went away (lower case).
LOST_SIGNS = ("timed out", "timeout", "connection closed", "connection reset", "broken pipe")
# gloo's tcp transport also fails a pending operation with its own words and no file prefix
# (the strings of libtorch's gloo Pair and Socket): each alone is a peer gone.
GLOO_PAIR_WORDS = (
    "caused pair closure",
    "remote peer closed the connection",
    "socket unexpectedly closed",
    "socket closed",
    "pair is not connected",
)


@dataclass(frozen=True)
class Dist:
    """Where this process sits: rank in 0..world_size-1 and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True when setup() created the process group (and must end it)
    timeout: float = 0.0  # seconds a collective waits for a stopped rank (0: not distributed)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and reports progress."""
        return self.rank == 0


def setup(device: str | torch.device | None = None) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1; pick the device.

    device None: CUDA (cuda:LOCAL_RANK) when available, else CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns, timeout = False, 0.0
    if world_size > 1:
        timeout = timeout_seconds()
    if world_size > 1 and not torch_dist.is_initialized():
        try:
            torch_dist.init_process_group(
                backend="nccl" if device.type == "cuda" else "gloo",
                timeout=datetime.timedelta(seconds=timeout),
            )
        except RuntimeError as error:
            if not _peer_failed(error):
                raise
            raise RankLost(  # c10d's DistStoreError: a rank that never joined
                f"rank {rank} of {world_size}: the other ranks did not join within "
                f"CNNLAB_DDP_TIMEOUT={timeout:g} s ({_first_words(error)}); start every rank "
                "(torchrun --nproc_per_node=N) or raise the timeout"
            ) from error
        owns = True
    return Dist(rank, world_size, local_rank, device, owns, timeout)


def _peer_failed(error: RuntimeError) -> bool:
    """c10d's errors of a collective or of the store (a peer that went quiet or never came),
    or gloo's words for it (a plain RuntimeError from its transport, "[...gloo...cc:N]" or
    "... by peer" with a sign of a timeout or a closed connection, or one of its tcp Pair's
    bare messages, GLOO_PAIR_WORDS, as "Application timeout caused pair closure"). Not
    DistNetworkError (a port in use is not a lost rank), nor another library's timeout (a
    DataLoader's): those keep their own type and traceback."""
    if isinstance(error, (torch_dist.DistBackendError, torch_dist.DistStoreError)):
        return True
    if isinstance(error, torch_dist.DistError):
        return False
    text = str(error).lower()
    if any(words in text for words in GLOO_PAIR_WORDS):
        return True
    from_backend = "gloo" in text or ".cc:" in text or "by peer" in text
    return from_backend and any(s in text for s in LOST_SIGNS)


def _first_words(error: BaseException) -> str:
    """The backend's own words, without gloo's "[path/file.cc:129] " prefix nor its advice
    ("This is typically caused by ... GLHF!")."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    said = re.sub(r"^\[[^\]]*\]\s*", "", first)
    return re.split(r"\.\s+This is typically", said)[0].rstrip(".")


def timeout_seconds() -> float:
    """$CNNLAB_DDP_TIMEOUT (seconds, default 300): how long a rank waits for a stopped one."""
    text = os.environ.get("CNNLAB_DDP_TIMEOUT", "300")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"CNNLAB_DDP_TIMEOUT must be a positive number of seconds: {text!r}")
    return value


def as_rank_lost(error: BaseException, dist: Dist, out: Path | None = None) -> BaseException:
    """A RankLost (caused by `error`) when `error` is the process group failing (a peer that
    stopped or left), else `error` itself: any other error, or one outside a distributed
    run, is not ours to rename (a bug keeps its traceback). `out`: the run directory, to say
    what is saved. Used as `raise as_rank_lost(error, dist, out)` in an except clause."""
    if not dist.enabled or isinstance(error, RankLost) or not isinstance(error, RuntimeError):
        return error
    if not _peer_failed(error):
        return error
    if out is None:
        saved = "nothing was saved (no run directory)"
    elif (Path(out) / CHECKPOINT_TENSORS).is_file():
        saved = f"the last checkpoint in {out} is whole: continue with --resume"
    else:
        saved = f"no checkpoint was saved in {out} yet: start again with --force"
    lost = RankLost(
        f"rank {dist.rank} of {dist.world_size}: another rank stopped answering "
        f"({_first_words(error)}); "
        f"a paused, killed or out-of-memory rank stops the others after "
        f"CNNLAB_DDP_TIMEOUT={dist.timeout:g} s; {saved}"
    )
    lost.__cause__ = error  # torch's error stays in a library user's traceback
    return lost


def teardown(dist: Dist) -> None:
    """Leave the process group if `setup` joined it. The group object itself is kept until
    the next teardown (or the process's exit): gloo's worker thread frees a collective's
    tensors after the caller saw it finish, taking the GIL to do so, and the group's
    destructor joins that thread. Destroyed at once (by DDP's reducer, freed with the run,
    the GIL held) right after a collective, it waited for a thread waiting for the GIL: a
    deadlock in 1 failed run of 5 once settle's all-reduce was the run's last collective."""
    if dist.owns_group and torch_dist.is_initialized():
        group = torch_dist.group.WORLD
        torch_dist.destroy_process_group()
        _RETIRED[:] = [group]  # the one before it is long idle: destroyed here


_RETIRED: list = []  # the process group `teardown` left last


def wrap(model: nn.Module, dist: Dist, input_shape=None) -> nn.Module:
    """DDP around `model` when distributed (gradients all-reduced in backward), else `model`,
    with the options `ddp_options` reads from its train-mode graph on images of
    `input_shape` (C, H, W)."""
    if not dist.enabled:
        return model
    ids = [dist.device.index] if dist.device.type == "cuda" else None
    options = ddp_options(model, input_shape) if input_shape is not None else {}
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, **options)


def ddp_options(model: nn.Module, input_shape) -> dict[str, bool]:
    """DDP's keyword arguments for `model` (`graph_walk` of its train-mode output on two zero
    images of `input_shape`, no backward run, no .grad touched; the user's forward hooks
    run, as a hook may cut the graph the steps train through):
    - a reentrant torch.utils.checkpoint in the graph: static_graph=True. Its block's
      parameters get their gradients in a nested backward; find_unused_parameters (which an
      unused head needs) marks them ready at the forward, then again there ('Expected to
      mark a variable ready only once'), and so does the default for a parameter two
      checkpointed blocks share. static_graph reads the used set from the first step (its
      all-reduce then waits for the whole backward) and needs it the same at every step;
    - else trainable parameters the output does not use (an auxiliary head behind a wrapper
      returning net(x)[0], a layer made and not called): find_unused_parameters=True,
      without which the second step fails ('Expected to have finished reduction in the
      prior iteration'); it searches the graph at every step, so a used set that changes
      from step to step (a branch taken by the data) still trains;
    - else, or where the graph cannot tell (a failing forward: training's own checks speak
      of that), DDP's default, which skips that search.
    DDP leaves the grad of a parameter no rank used untouched (None), as a single process
    does."""
    walk = graph_walk(model, input_shape, hooked=True)
    if walk is None:
        return {}
    if walk.reentrant:
        return {"static_graph": True}
    return {"find_unused_parameters": True} if walk.unreached else {}


def static_graph_note(net: nn.Module, title: str) -> list[str]:
    """The note of a model DDP trains with static_graph=True (`ddp_options`: a reentrant
    checkpoint): what that asks of its forward, and how to lift it; none otherwise. `net`
    is `wrap`'s result, torch.compile'd or not."""
    ddp = getattr(net, "_orig_mod", net)
    if not getattr(ddp, "static_graph", False):
        return []
    return [
        f"{title} has a torch.utils.checkpoint with use_reentrant=True, so DDP trained it "
        "with static_graph=True: the parameters that get a gradient are read at the first "
        "step and must be the same at every step (a layer the forward uses at some steps "
        "only stops training: 'Expected to have finished reduction'); use_reentrant=False "
        "lifts that"
    ]


def all_reduce_sum(values: list[float], dist: Dist) -> list[float]:
    """Element-wise sum of `values` over all ranks (float64, so counts stay exact)."""
    if not dist.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=dist.device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.SUM)
    return t.tolist()


def all_reduce_min(value: int, dist: Dist) -> int:
    """Smallest `value` over all ranks (e.g. batches per epoch, so no rank waits forever)."""
    if not dist.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=dist.device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MIN)
    return int(t.item())


def step_flags(flags: list[bool], dist: Dist) -> list[bool]:
    """Each flag OR-ed over all ranks, in ONE all-reduce (MAX of 0/1 values): the per-step
    decisions (diverged, stop, checkpoint due) that every rank must take alike. Under gloo on
    one host a 3-element all-reduce costs ~0.1 ms, against the gradients' all-reduce and a
    10-50 ms step; three separate calls would triple the latency for nothing."""
    if not dist.enabled:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=dist.device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def any_rank(flag: bool, dist: Dist) -> bool:
    """True when `flag` is set on any rank (a Ctrl-C seen by one rank stops all of them)."""
    if not dist.enabled:
        return flag
    return all_reduce_min(0 if flag else 1, dist) == 0


def broadcast_buffers(model: nn.Module, dist: Dist) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP syncs buffers at the start of each forward, so after the last step each rank still
    holds the statistics of its own last batch; this makes the ranks identical again.
    """
    if not dist.enabled:
        return
    for buffer in model.buffers():
        torch_dist.broadcast(buffer, src=0)


def broadcast_object(obj, dist: Dist, src: int = 0):
    """Rank `src`'s `obj` on every rank (a small picklable value such as an error message)."""
    if not dist.enabled:
        return obj
    box = [obj]
    torch_dist.broadcast_object_list(box, src=src)
    return box[0]


@contextmanager
def together(dist: Dist) -> Iterator[None]:
    """Work a rank does on its own (rank 0's writes, its callback, a rank's shard), closed by
    `settle`: every rank learns at once whether any rank's block failed. Every rank must
    enter the same blocks in the same order, and a block must hold no collective (a rank
    that failed before it would meet the others' collective with settle's)."""
    try:
        yield
    except BaseException as error:
        settle(error, dist)  # raises `error`
    settle(None, dist)


def settle(failure: BaseException | None, dist: Dist) -> None:
    """Each rank says whether its own work failed (`failure`): one all-reduce of a flag per
    rank, then, when one failed, the lowest failed rank's line broadcast from it. A failed
    rank raises its own error; the others raise a RankLost 'rank 1 of 2: rank 0 failed: ...'
    (a KeyboardInterrupt when that rank was interrupted). Every rank calls it at the same
    point. Outside a distributed run it raises `failure`, if any."""
    heard = None
    if dist.enabled:
        try:
            heard = _failed_rank(failure, dist)
        except Exception:
            if failure is None:
                raise  # the backend's error: a peer gone (as_rank_lost)
            # the collective failed too: this rank's own error is the one to tell
    if failure is not None:
        raise failure
    if heard is not None:
        rank, (interrupted, words) = heard
        if interrupted:
            raise KeyboardInterrupt(f"rank {rank} was interrupted")
        raise RankLost(f"rank {dist.rank} of {dist.world_size}: rank {rank} failed: {words}")


def _failed_rank(failure: BaseException | None, dist: Dist) -> tuple[int, tuple] | None:
    """(the lowest rank whose work failed, (interrupted, its line)), or None when none did."""
    flags = torch.zeros(dist.world_size, dtype=torch.float64, device=dist.device)
    flags[dist.rank] = failure is not None
    torch_dist.all_reduce(flags, op=torch_dist.ReduceOp.MAX)
    failed = [rank for rank, flag in enumerate(flags.tolist()) if flag]
    if not failed:
        return None
    said = (isinstance(failure, KeyboardInterrupt), failure_line(failure))
    return failed[0], broadcast_object(said if dist.rank == failed[0] else None, dist, failed[0])


def failure_line(error: BaseException | None) -> str:
    """What a failed rank tells the others: a CnnlabError's own line (what failed, the path,
    the fix), any other error's type and first line ('OSError: [Errno 5] ...')."""
    if error is None:
        return ""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(error, CnnlabError):
        return first or type(error).__name__
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def record_failure(error: BaseException) -> None:
    """Under torchrun, this rank's own failure written where torchrun reads it for its end
    summary: $TORCHELASTIC_ERROR_FILE, one per rank, in the format of torch's
    `elastic.multiprocessing.errors.record`. torchrun names as the root cause the failure
    with the earliest time, read from that file, and shows its message; a rank without one
    has no message ('To enable traceback see ...') and is timed when torchrun sees it exit.
    A one-line error (bad input, a diverged run) is its line, as on stderr; any other its
    traceback, as `record` writes it. A RankLost is never recorded: it is another rank's
    failure, which that rank records."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path or isinstance(error, RankLost):
        return
    line = failure_line(error)
    one_line = isinstance(error, (CnnlabError, TrainingDiverged))
    said = line if one_line else "".join(traceback.format_exception(error))
    info = {"py_callstack": said, "timestamp": str(int(time.time()))}
    try:
        Path(path).write_text(json.dumps({"message": {"message": line, "extraInfo": info}}))
    except OSError:
        pass  # the rank's own line is on its stderr; a full disk may be what failed


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> str:
    """What the run trained on, for config.json and the report: the CPU's model name (or
    the GPU's), its cores and torch's threads, e.g. 'AMD EPYC 9B14, 2 cores, 2 threads'."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), {os.cpu_count()} CPU cores"
    return f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
