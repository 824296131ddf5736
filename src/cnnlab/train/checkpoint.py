"""Checkpoints a killed run can resume from: safetensors for tensors, JSON for the rest.

A checkpoint is two files in the run directory:

- ``checkpoint.safetensors``: the model's state (``model.*``), the EMA copy (``ema.*``) and
  the optimizer's per-parameter tensors (``optimizer.<index>.<name>``, e.g. momentum buffers);
- ``checkpoint.json``: epoch, step, schedule position, optimizer hyper-parameters, RNG states
  (torch as base64, NumPy and Python as lists), for people and tools to read.

Nothing is pickled: ``torch.save``/``torch.load`` never run, so loading a checkpoint cannot
execute code. Each file is written atomically (temp file in the same directory, flush +
fsync, ``os.replace``, fsync of the directory). The tensor file also carries the JSON state
in its safetensors metadata, so its one rename is the commit point: a crash or a full disk
at any moment leaves a whole checkpoint, the old one or the new one, and a sidecar torn
from its tensors (killed between the two renames, disk full on the second) is ignored.
"""

from __future__ import annotations

import base64
import errno
import glob
import hashlib
import json
import os
import random
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from cnnlab.errors import RunError

CHECKPOINT_TENSORS = "checkpoint.safetensors"
CHECKPOINT_STATE = "checkpoint.json"
MODEL_WEIGHTS = "model.safetensors"
START_AGAIN = "start the run again with --force"  # a checkpoint that cannot be used
FORMAT = 2  # 1: the state in checkpoint.json only, tied to the tensors by their SHA-256


# --- atomic files ------------------------------------------------------------------------


def _write_all(file, data: bytes) -> None:
    """Write every byte (a seam for tests: they make it fail half-way, like a full disk)."""
    file.write(data)


def atomic_write(path: str | Path, data: bytes) -> None:
    """Replace `path` by `data` all at once: the file is either the old one or the new one.

    Raises RunError naming the file when the write fails (e.g. ENOSPC); the old file stays.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{_writer_id()}")
    _discard_orphans(path)
    try:
        with open(tmp, "wb") as file:
            _write_all(file, data)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except OSError as error:
        _discard(tmp)
        reason = error.strerror or str(error)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):  # how much space to free
            reason += f" (the write needs {size_text(len(data))} free)"
        # a file written for the first time (config.json of a new run) had no previous version
        kept = "; the previous version of the file is intact" if path.exists() else ""
        raise RunError(f"could not write {path}: {reason}{kept}") from error
    except BaseException:
        _discard(tmp)
        raise
    _fsync_dir(path.parent)


def size_text(n: int) -> str:
    """n bytes in decimal units, rounded up so that freeing that much is enough:
    ⌈n / 10⁵⌉ / 10 MB from 1 MB on, else ⌈n / 10³⌉ kB (3,496,216 -> '3.5 MB')."""
    if n >= 1_000_000:
        return f"{-(-n // 100_000) / 10:.1f} MB"
    return f"{-(-n // 1000)} kB"


def _writer_id() -> str:
    """`<pid>@<host>`, a temp file's writer: a PID names a process on its own machine only
    (a run directory on a shared disk is seen from others)."""
    return f"{os.getpid()}@{socket.gethostname()}"


def _discard_orphans(path: Path) -> None:
    """Remove the temp files of `path` that a killed write on this machine left
    (`.<name>.tmp-<pid>@<host>` of a PID no process has now): a SIGKILL between open and
    rename has no moment to clean up, and outside a run directory (the explorer's caches,
    report.html) nothing else would. Another machine's are left: its PID means nothing here."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        pid, _, host = tmp.name.rpartition(".tmp-")[2].partition("@")
        here = host == socket.gethostname()
        if here and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            _discard(tmp)


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (signal 0 checks without sending; another user's
    process refuses it, and exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _discard(tmp: Path) -> None:
    """Remove a failed write's temp file. Its own failure is not the one to report: on a
    read-only mount unlink fails (EROFS) even for the file open() never made."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write `obj` as indented JSON."""
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


# --- tensors -----------------------------------------------------------------------------


def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or strided storage: give each tensor its own contiguous copy
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def save_weights(
    path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write a state_dict (parameters and buffers) to a safetensors file, atomically, with
    string `metadata` in its header (e.g. the hashes of the run's spec and config)."""
    atomic_write(path, st_save(_plain(state), metadata=metadata or None))


def load_weights(path: str | Path, then: str = "") -> dict[str, torch.Tensor]:
    """Read a safetensors file into a state_dict. RunError names the file when it is
    unreadable (`then`: what to do, appended) or a floating-point tensor holds NaN or
    infinity (`check_finite`)."""
    path = Path(path)
    try:
        tensors = st_load(path.read_bytes())
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except Exception as error:  # safetensors raises its own error types on corrupt files
        raise RunError(f"{path} is not a readable safetensors file: {error}{then}") from error
    check_finite(tensors, path)
    return tensors


def check_finite(tensors: dict[str, torch.Tensor], path: str | Path, then: str = "") -> None:
    """RunError naming `path` and the first tensor holding NaN or ±inf (a corrupt file, or
    weights saved from a run that had already diverged); `then`: what to do, appended."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise RunError(
                f"{path}: tensor {name} holds NaN or infinite values; the file is corrupt or "
                f"was saved from a diverged run, so it cannot be used{then}"
            )


# --- RNG states --------------------------------------------------------------------------


def rng_state() -> dict:
    """torch, NumPy and Python RNG states as JSON-ready values (base64 and lists)."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
        "numpy": {
            "kind": np_state[0],
            "keys": np_state[1].tolist(),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = [
            base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()
        ]
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` captured."""
    raw = base64.b64decode(state["torch"])
    torch.set_rng_state(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
    n = state["numpy"]
    keys = np.array(n["keys"], dtype=np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        states = [
            torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)
            for s in state["cuda"]
        ]
        torch.cuda.set_rng_state_all(states)


# --- optimizer state ---------------------------------------------------------------------


def split_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer.state_dict() -> (tensors keyed `optimizer.<i>.<name>`, JSON-ready rest)."""
    tensors, scalars = {}, {}
    for index, entries in state_dict["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def join_optimizer_state(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    """Inverse of `split_optimizer_state`: a dict `Optimizer.load_state_dict` accepts."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entries in rest["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": rest["param_groups"]}


# --- checkpoint pair ---------------------------------------------------------------------


def save_checkpoint(directory: str | Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Write checkpoint.safetensors (tensors + state in its metadata), then its readable copy
    checkpoint.json, each atomically, into `directory`.

    tensors: flat name -> tensor; state: JSON-ready dict (epoch, step, RNG, ...). Once the
    first file is written the checkpoint is complete; a failure on the second (RunError)
    leaves a sidecar that load_checkpoint knows to ignore.
    """
    directory = Path(directory)
    state = {**state, "format": FORMAT}
    text = json.dumps(state)
    blob = st_save(_plain(tensors), metadata={"format": str(FORMAT), "state": text})
    atomic_write(directory / CHECKPOINT_TENSORS, blob)
    atomic_write(directory / CHECKPOINT_STATE, (text + "\n").encode())


def load_checkpoint(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read the pair `save_checkpoint` wrote -> (tensors, state).

    Raises RunError when a file is missing, unreadable, or the two do not belong together.
    """
    directory = Path(directory)
    tensor_path, state_path = directory / CHECKPOINT_TENSORS, directory / CHECKPOINT_STATE
    if not tensor_path.is_file():
        raise RunError(
            f"{tensor_path} is missing: there is no checkpoint to resume from "
            "(start the run again with --force)"
        )
    blob = tensor_path.read_bytes()
    state = _embedded_state(tensor_path)
    if state is None:  # format 1: the state lives in the sidecar only
        state = _sidecar_state(state_path, blob)
    try:
        tensors = st_load(blob)
    except Exception as error:  # safetensors raises its own error types on corrupt files
        raise RunError(
            f"{tensor_path} is not a readable safetensors file: {error}; {START_AGAIN}"
        ) from error
    check_finite(tensors, tensor_path, f"; {START_AGAIN}")
    return tensors, state


def refresh_sidecar(directory: str | Path) -> None:
    """checkpoint.json rewritten from the tensor file's state when it is not that state's
    copy: a kill or a full disk between the two renames left the older one, which people
    and tools read as the checkpoint's position. Best effort: the tensor file is the
    commit, and a directory that cannot take the write fails at the next checkpoint."""
    directory = Path(directory)
    try:
        with safe_open(directory / CHECKPOINT_TENSORS, framework="pt") as file:
            text = (file.metadata() or {}).get("state")
        sidecar = directory / CHECKPOINT_STATE
        if text is not None and (not sidecar.is_file() or sidecar.read_text() != text + "\n"):
            atomic_write(sidecar, (text + "\n").encode())
    except Exception:  # safetensors' own errors on a corrupt file; OSError; RunError
        return


def saved_position(directory: str | Path) -> tuple[int, int] | None:
    """(epoch, step) of the checkpoint in `directory` as its tensor file (the commit point)
    holds it; None when there is none that can be read. What a failed write left is read
    from the disk: a write that failed after the tensors' rename left the new checkpoint."""
    try:
        state = _embedded_state(Path(directory) / CHECKPOINT_TENSORS)
        return (int(state["epoch"]), int(state["step"])) if state else None
    except (RunError, KeyError, TypeError, ValueError):
        return None


def saved_hashes(directory: str | Path) -> dict:
    """The spec and config hashes the checkpoint in `directory` was saved with ({} when
    there is none that can be read)."""
    try:
        state = _embedded_state(Path(directory) / CHECKPOINT_TENSORS)
    except RunError:
        return {}
    hashes = (state or {}).get("hashes") if isinstance(state, dict) else None
    return hashes if isinstance(hashes, dict) else {}


def _embedded_state(tensor_path: Path) -> dict | None:
    """The state in the tensor file's metadata (format ≥ 2), None for a format-1 file."""
    try:
        with safe_open(tensor_path, framework="pt") as file:
            text = (file.metadata() or {}).get("state")
    except Exception as error:  # safetensors raises its own error types on corrupt files
        raise RunError(
            f"{tensor_path} is not a readable safetensors file: {error}; {START_AGAIN}"
        ) from error
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RunError(f"{tensor_path}: its checkpoint state is not valid JSON") from error


def _sidecar_state(state_path: Path, blob: bytes) -> dict:
    """A format-1 checkpoint's state: checkpoint.json, if its hash names these tensors."""
    if not state_path.is_file():
        raise RunError(
            f"{state_path} is missing: there is no checkpoint to resume from "
            "(start the run again with --force)"
        )
    try:
        state = json.loads(state_path.read_text())
    except json.JSONDecodeError as error:
        raise RunError(f"{state_path} is not valid JSON: {error}") from error
    tensor_path = state_path.with_name(CHECKPOINT_TENSORS)
    if not isinstance(state, dict) or "tensors_sha256" not in state:  # not format 1's
        raise RunError(
            f"{tensor_path} holds tensors but no checkpoint state, as a weights file such as "
            f"{MODEL_WEIGHTS} does: it is not a checkpoint cnnlab wrote (put the run's own "
            f"checkpoint back); {START_AGAIN}"
        )
    if state.get("tensors_sha256") != hashlib.sha256(blob).hexdigest():
        raise RunError(
            f"{state_path} does not describe {tensor_path} (the run stopped between writing "
            "the two files); start the run again with --force"
        )
    return state


# --- fitting a model ------------------------------------------------------------------


def weight_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """'' when `found` fits a model whose state_dict is `expected`, else what differs: the
    first tensor whose shape differs (model's vs file's), the first whose kind of number
    differs (load_state_dict casts an int32 file into float weights, or floats into a
    counter, without a word), then missing and unexpected names. Another float precision
    (fp16, fp64) fits: its values cast to the model's."""
    parts = []
    for key, told in ((_shape, _shape), (_kind, _dtype)):  # what differs, how it is told
        differ = [k for k in expected if k in found and key(expected[k]) != key(found[k])]
        if differ:
            k, more = differ[0], f" (and {len(differ) - 1} more)" if len(differ) > 1 else ""
            parts.append(
                f"tensor {k} is {told(expected[k])} in the model but {told(found[k])} in the "
                f"file{more}"
            )
    for what, names in (
        ("missing from the file", [k for k in expected if k not in found]),
        ("not in the model", [k for k in found if k not in expected]),
    ):
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            parts.append(f"{what}: {shown}")
    return "; ".join(parts)


def _kind(t: torch.Tensor) -> str:
    if t.is_floating_point():
        return "float"
    return "complex" if t.is_complex() else "bool" if t.dtype == torch.bool else "integer"


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _shape(t: torch.Tensor) -> str:
    return "×".join(str(n) for n in t.shape) or "scalar"


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix.` with the prefix removed (``model.0.weight`` -> ``0.weight``)."""
    start = len(prefix) + 1
    return {k[start:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
