"""The run directory: the one owner of its files, checks on open, writers and lock.

Its file names and record readers live in run_files.py, reading a whole run (`load_run`,
`Run`) in run.py; every name is importable from here, as it always was.

What `cnnlab.train.train` writes (every write atomic: temp file, fsync, rename):
spec.yaml (a spec run) · config.json (TrainConfig fields, data, classes, mean, std,
input_shape, the model's source) · metrics.jsonl (one row per epoch) · checkpoint.safetensors
(+ checkpoint.json, its readable copy; the metrics rows ride in the same commit) ·
model.safetensors (the final weights; its metadata holds the SHA-256 of spec and config, so
an edit after training is caught on open) · .cnnlab.lock (held with flock for the run's
life; it also marks the directory as cnnlab's, so --force never empties a stranger's).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import RunError
from cnnlab.train import checkpoint
from cnnlab.train.checkpoint import CHECKPOINT_STATE, CHECKPOINT_TENSORS, MODEL_WEIGHTS
from cnnlab.train.run import Run, load_run, made_in_forward, weight_mismatch
from cnnlab.train.run_files import (
    CONFIG,
    EVALUATION,
    HASHES_KEY,
    LOCK,
    METRICS,
    REPORT,
    REQUIRED_CONFIG,
    SPEC,
    UNHASHED,
    WRITTEN,
    WRITTEN_DIRS,
    check_config,
    data_gone,
    images_per_second,
    is_run,
    read_config,
    read_metrics,
    run_hashes,
    temp_files,
    worth_keeping,
    writer,
)

# every name other modules import from here (the directory's one owner), wherever it lives
__all__ = [
    "CHECKPOINT_STATE", "CHECKPOINT_TENSORS", "CONFIG", "EVALUATION", "HASHES_KEY", "LOCK",
    "METRICS", "MODEL_WEIGHTS", "REPORT", "REQUIRED_CONFIG", "SPEC", "UNHASHED", "WRITTEN",
    "WRITTEN_DIRS", "Run", "RunDir", "check_config", "check_out", "data_gone", "images_per_second",
    "is_run", "load_run", "made_in_forward", "read_config", "read_metrics", "run_hashes",
    "weight_mismatch",
]  # fmt: skip


# --- writing a run -----------------------------------------------------------------------


class RunDir:
    """A run directory opened for writing by one process, locked (fcntl.flock) until
    `close()`. `RunDir.open(out, resume=, force=)` checks everything that can be checked
    before any data is loaded: writable, not another process's, not a stranger's files."""

    def __init__(self, path: Path, fd: int, created: list[Path]) -> None:
        self.path, self._fd, self._created = path, fd, created
        self.hashes: dict[str, str] = {}

    @classmethod
    def open(cls, out: str | Path, *, resume: bool, force: bool) -> RunDir:
        out = Path(out)
        try:
            return cls._open(out, resume, force)
        except OSError as error:  # a name too long, a path under a file, a read-only mount
            fix = _out_fix(out, error, resume)
            raise RunError(f"cannot write --out {out}: {error.strerror or error}; {fix}") from None

    @classmethod
    def _open(cls, out: Path, resume: bool, force: bool) -> RunDir:
        check_out(out, resume=resume, force=force)
        # out and each missing parent, deepest first: a failed start removes them all
        created = [p for p in (out, *out.parents) if not p.exists()]
        out.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            _remove_made(created)
            raise
        run = cls(out, fd, created)
        try:
            _lock(fd, out)  # its PID written: a full disk fails here, the lock file made
        except OSError:
            run.close(failed=True)
            raise
        return run

    def clear(self) -> None:
        """Delete what cnnlab wrote here (a previous run, temp files of a killed one)."""
        for name in WRITTEN:
            (self.path / name).unlink(missing_ok=True)
        for name in WRITTEN_DIRS:
            shutil.rmtree(self.path / name, ignore_errors=True)
        self.clean_temp()

    def clean_temp(self) -> None:
        for p in temp_files(self.path):
            p.unlink(missing_ok=True)

    def start(self, spec_text: str | None, config: dict[str, Any]) -> None:
        """A new run's spec.yaml (a spec run), config.json and empty metrics.jsonl."""
        if spec_text is not None:
            checkpoint.atomic_write(self.path / SPEC, spec_text.encode())
        checkpoint.write_json(self.path / CONFIG, config)
        self.write_metrics([])
        self.hashes = run_hashes(spec_text, config)

    def reopen(self) -> None:
        """Resume: temp files of a kill removed, checkpoint.json the copy of the checkpoint
        again, the stored run's hashes for the weights."""
        self.clean_temp()
        checkpoint.refresh_sidecar(self.path)
        spec = self.path / SPEC
        self.hashes = run_hashes(spec.read_text() if spec.is_file() else None, read_config(self))

    def append_config(self, key: str, record: dict[str, Any]) -> None:
        """Append `record` to config.json's list `key` (one of UNHASHED)."""
        assert key in UNHASHED
        config = read_config(self)
        config[key] = [*config.get(key, []), record]
        checkpoint.write_json(self.path / CONFIG, config)

    def write_metrics(self, rows: list[dict]) -> None:
        checkpoint.atomic_write(
            self.path / METRICS, "".join(json.dumps(r) + "\n" for r in rows).encode()
        )

    def save_checkpoint(self, tensors: dict, state: dict, rows: list[dict]) -> None:
        """One commit: tensors, loop state AND the metrics rows so far (the rename of
        checkpoint.safetensors); metrics.jsonl is then rewritten from them, and a resume
        rebuilds it from the checkpoint if a kill lands in between."""
        checkpoint.save_checkpoint(self.path, tensors, {**state, "metrics": rows})
        self.write_metrics(rows)

    def save_weights(self, state: dict[str, torch.Tensor]) -> None:
        # one metadata key: safetensors orders several keys at random, and the file must be
        # bitwise the same for the same run
        metadata = {HASHES_KEY: json.dumps(self.hashes, sort_keys=True)}
        checkpoint.save_weights(self.path / MODEL_WEIGHTS, state, metadata=metadata)

    def close(self, failed: bool = False) -> None:
        """Release the lock; a failure that left nothing but the lock leaves the directory
        as it found it: removed if this call created it, with the parents it created (a
        mistyped preset left `runs/` behind for `--out runs/x`), else empty again."""
        if self._fd is None:
            return
        if failed and not any(p.name != LOCK for p in self.path.iterdir()):
            (self.path / LOCK).unlink(missing_ok=True)
            _remove_made(self._created)
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def _remove_made(created: list[Path]) -> None:
    """Remove the directories a failed start made, deepest first, while they are empty."""
    for made in created:
        if any(made.iterdir()):  # another writer's files: left alone
            break
        made.rmdir()


def _out_fix(out: Path, error: OSError, resume: bool) -> str:
    """What to do about an --out the OS refused, by its errno: a file on the path, a name too
    long, no space, or no right to write (a read-only mount, permissions); a run to resume
    can be copied to a writable place and resumed there (its data is recorded by name or
    absolute path)."""
    if error.errno == errno.ENOTDIR:
        blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        return f"{blocker or 'a part of it'} is a file, not a directory: choose another --out"
    if error.errno == errno.ENAMETOOLONG:
        return "a name in it is longer than the file system allows: choose a shorter --out"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):  # a run to resume stays where it is
        return (
            "free some space and resume again"
            if resume
            else "free some space, or choose another --out"
        )
    if resume and error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"make {out} writable (a read-only mount, or its permissions), or copy the run to "
            "a writable directory and resume that one"
        )
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "choose an --out on a writable disk, in a directory you may write in"
    return (
        "copy the run to another directory and resume that one"
        if resume
        else "choose another --out"
    )


def check_out(out: Path, *, resume: bool, force: bool) -> None:
    """RunError if `out` cannot take a run so (a file, a user's directory, a run without
    --resume/--force, nothing to resume): `RunDir.open`'s checks, for a command's first words."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} exists and is not a directory; choose another --out")
    holder = writer(out) if out.is_dir() else None
    if holder is not None:  # before any other advice: --resume and --force wait for it too
        raise RunError(_written_by(out, holder))
    busy = out.is_dir() and bool(worth_keeping(out))
    if resume and not (out / CONFIG).is_file():
        if (out / LOCK).is_file():  # cnnlab's, killed before its config.json was written
            # what such a start left is no run (`worth_keeping`): the command that started
            # it works as it was, and --force, which deletes runs, is not needed
            raise RunError(
                f"cannot resume {out}: its run was stopped before it wrote {CONFIG}, so "
                "there is nothing to resume; start it again with the command that started "
                "it, without --resume (no --force needed)"
            )
        if not out.exists():
            raise RunError(f"cannot resume {out}: there is no such directory")
        raise RunError(f"cannot resume {out}: it has no {CONFIG} (is it a run directory?)")
    if busy and not resume and not is_run(out):
        raise RunError(
            f"--out {out} is not empty and is not a cnnlab run (no {CONFIG} of a run); "
            "choose a new or empty directory: cnnlab deletes only files it wrote"
        )
    if busy and not (resume or force) and "imported" in read_config(out):
        raise RunError(  # cnnlab import wrote it: --resume has no training to continue
            f"{out} already holds a run made by cnnlab import, which has no training to "
            "resume: choose another --out, or --force to replace it (--force deletes its run "
            "files)"
        )
    if busy and not (resume or force) and (out / MODEL_WEIGHTS).is_file():
        # its weights are written at the end: --resume has nothing to continue
        raise RunError(
            f"{out} already exists and its training is finished (--resume would only evaluate "
            "it again): choose another --out, or --force to start again (--force deletes its "
            "run files)"
        )
    if busy and not (resume or force):
        raise RunError(
            f"{out} already exists; pass --resume to continue that run or --force to "
            "start again (--force deletes its run files)"
        )


LOCK_PATIENCE = 0.1  # seconds: `run_files.writer`'s probe holds a shared lock for µs


def _lock(fd: int, out: Path) -> None:
    """flock the lock file, waiting at most LOCK_PATIENCE (a command asking whether the run
    is being trained holds it for a moment; a training holds it for its whole run);
    RunError naming the PID holding it."""
    deadline = time.monotonic() + LOCK_PATIENCE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.005)
                continue
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunError(_written_by(out, holder)) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _written_by(out: Path, holder: str) -> str:
    return (
        f"{out} is being written by another cnnlab process (PID {holder}); wait for it to "
        "end, stop it, or choose another --out"
    )
