"""The run directory: the one owner of its file names, checks on open, readers, writers, lock.

    run = load_run("runs/fast")
    x = run.preprocess(images_uint8)          # (B, C, H, W) -> normalized float
    probs = run.model(x).softmax(1)           # (B, classes)

What `cnnlab.train.train` writes (every write atomic: temp file, fsync, rename):
spec.yaml (a spec run) · config.json (TrainConfig fields, data, classes, mean, std,
input_shape, the model's source) · metrics.jsonl (one row per epoch) · checkpoint.safetensors
(+ checkpoint.json, its readable copy; the metrics rows ride in the same commit) ·
model.safetensors (the final weights; its metadata holds the SHA-256 of spec and config, so
an edit after training is caught on open) · .cnnlab.lock (held with flock for the run's
life; it also marks the directory as cnnlab's, so --force never empties a stranger's).
Weights load with safetensors only: nothing is unpickled; NaN/inf weights are refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from cnnlab.data import load_dataset, to_float
from cnnlab.errors import CnnlabError, ConfigError, RunError
from cnnlab.inspect import classifier_misfit
from cnnlab.train import checkpoint
from cnnlab.train.checkpoint import CHECKPOINT_STATE, CHECKPOINT_TENSORS, MODEL_WEIGHTS
from cnnlab.train.config import TrainConfig
from cnnlab.train.source import ModelSource

SPEC, CONFIG, METRICS = "spec.yaml", "config.json", "metrics.jsonl"
REPORT, EVALUATION, LOCK = "report.html", "evaluation.json", ".cnnlab.lock"
# What cnnlab writes into a run; --force and demo delete these and nothing else.
WRITTEN = (SPEC, CONFIG, METRICS, MODEL_WEIGHTS, CHECKPOINT_TENSORS, CHECKPOINT_STATE, REPORT)
WRITTEN_DIRS = ("figures", "samples")  # the report's figures, the demo's sample images
REQUIRED_CONFIG = ("data", "classes", "mean", "std", "input_shape")
UNHASHED = ("resumes",)  # config.json keys that may change after training (appended records)
HASHES_KEY = "cnnlab.run"  # model.safetensors metadata: {"spec_sha256", "config_sha256"}
__all__ = ["MODEL_WEIGHTS", "Run", "RunDir", "load_run", "weight_mismatch"]


# --- what a directory is -------------------------------------------------------------------


def is_run(path: Path) -> bool:
    """True when cnnlab wrote `path`: it holds cnnlab's lock file, or a config.json with a
    run's keys (runs written before the lock file existed)."""
    if (path / LOCK).is_file():
        return True
    try:
        config = json.loads((path / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and all(k in config for k in REQUIRED_CONFIG)


def _temp_files(path: Path) -> list[Path]:
    """Temporary files a killed atomic write left (`.<name>.tmp-<pid>` of a run file)."""
    return [p for name in WRITTEN for p in path.glob(f".{name}.tmp-*")]


def _worth_keeping(path: Path) -> list[Path]:
    """What a new run in `path` could lose: all but cnnlab's lock and temp files, and beside
    the lock a spec.yaml without config.json (a run killed between its first writes)."""
    ours = {LOCK, *(p.name for p in _temp_files(path))}
    if (path / LOCK).is_file() and not (path / CONFIG).is_file():  # a user's spec.yaml stays
        ours.add(SPEC)
    return [p for p in path.iterdir() if p.name not in ours]


def run_hashes(spec_text: str | None, config: dict[str, Any]) -> dict[str, str]:
    """{"spec_sha256", "config_sha256"}: SHA-256 of spec.yaml's text and of config.json's
    fields in canonical JSON (sorted keys, the appended UNHASHED keys left out)."""
    fields = {k: v for k, v in config.items() if k not in UNHASHED}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return {
        "spec_sha256": hashlib.sha256((spec_text or "").encode()).hexdigest(),
        "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


# --- writing a run -----------------------------------------------------------------------


class RunDir:
    """A run directory opened for writing by one process, locked (fcntl.flock) until
    `close()`. `RunDir.open(out, resume=, force=)` checks everything that can be checked
    before any data is loaded: writable, not another process's, not a stranger's files."""

    def __init__(self, path: Path, fd: int, created: bool) -> None:
        self.path, self._fd, self._created = path, fd, created
        self.hashes: dict[str, str] = {}

    @classmethod
    def open(cls, out: str | Path, *, resume: bool, force: bool) -> RunDir:
        out = Path(out)
        try:
            return cls._open(out, resume, force)
        except OSError as error:  # a name too long, a path under a file, a read-only mount
            raise RunError(f"cannot write --out {out}: {error.strerror or error}") from None

    @classmethod
    def _open(cls, out: Path, resume: bool, force: bool) -> RunDir:
        check_out(out, resume=resume, force=force)
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        _lock(fd, out)
        return cls(out, fd, created)

    def clear(self) -> None:
        """Delete what cnnlab wrote here (a previous run, temp files of a killed one)."""
        for name in WRITTEN:
            (self.path / name).unlink(missing_ok=True)
        for name in WRITTEN_DIRS:
            shutil.rmtree(self.path / name, ignore_errors=True)
        self.clean_temp()

    def clean_temp(self) -> None:
        for p in _temp_files(self.path):
            p.unlink(missing_ok=True)

    def start(self, spec_text: str | None, config: dict[str, Any]) -> None:
        """A new run's spec.yaml (a spec run), config.json and empty metrics.jsonl."""
        if spec_text is not None:
            checkpoint.atomic_write(self.path / SPEC, spec_text.encode())
        checkpoint.write_json(self.path / CONFIG, config)
        self.write_metrics([])
        self.hashes = run_hashes(spec_text, config)

    def reopen(self) -> None:
        """Resume: temp files of a kill removed, the stored run's hashes for the weights."""
        self.clean_temp()
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
        """Release the lock; a directory this call created and left empty is removed."""
        if self._fd is None:
            return
        if failed and self._created and not any(p.name != LOCK for p in self.path.iterdir()):
            (self.path / LOCK).unlink(missing_ok=True)
            self.path.rmdir()
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def check_out(out: Path, *, resume: bool, force: bool) -> None:
    """RunError if `out` cannot take a run so (a file, a user's directory, a run without
    --resume/--force, nothing to resume): `RunDir.open`'s checks, for a command's first words."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} exists and is not a directory; choose another --out")
    busy = out.is_dir() and bool(_worth_keeping(out))
    if resume and not (out / CONFIG).is_file():
        if (out / LOCK).is_file():  # cnnlab's, killed before its config.json was written
            raise RunError(
                f"cannot resume {out}: its run was stopped before it wrote {CONFIG}, so "
                "there is nothing to resume; start it again with --force"
            )
        if not out.exists():
            raise RunError(f"cannot resume {out}: there is no such directory")
        raise RunError(f"cannot resume {out}: it has no {CONFIG} (is it a run directory?)")
    if busy and not resume and not is_run(out):
        raise RunError(
            f"--out {out} is not empty and is not a cnnlab run (no {CONFIG} of a run); "
            "choose a new or empty directory: cnnlab deletes only files it wrote"
        )
    if busy and not (resume or force):
        raise RunError(
            f"{out} already exists; pass --resume to continue that run or --force to "
            "start again (--force deletes its run files)"
        )


def _lock(fd: int, out: Path) -> None:
    """flock the lock file without waiting; RunError naming the PID holding it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunError(
            f"{out} is being written by another cnnlab process (PID {holder}); wait for it to "
            "end, stop it, or choose another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


# --- reading a run -------------------------------------------------------------------------


def read_config(run: Any) -> dict[str, Any]:
    """RUN/config.json as a dict (RunError naming the file when it is no JSON object)."""
    path = Path(getattr(run, "path", run)) / CONFIG
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path.parent} has no {CONFIG}: it is not a complete run") from None
    except (ValueError, OSError) as error:
        raise RunError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise RunError(f"{path} must hold a JSON object, not {type(config).__name__}")
    return config


def images_per_second(rows: list[dict[str, Any]]) -> float:
    """Training throughput over the whole run: Σ images ÷ Σ seconds of the epochs' steps
    (images of an epoch = its img_per_s × seconds). Not the mean of the epochs' rates, which
    a short fast epoch inflates."""
    seconds = sum(r.get("seconds", 0.0) for r in rows)
    images = sum(r.get("img_per_s", 0.0) * r.get("seconds", 0.0) for r in rows)
    return images / seconds if seconds > 0 else 0.0


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of RUN/metrics.jsonl, one per epoch ([] before the first epoch ends);
    RunError naming the file and line that is not a JSON object."""
    file = Path(path) / METRICS
    if not file.is_file():
        return []
    rows = []
    for number, line in enumerate(file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise RunError(f"{file} line {number} is not valid JSON ({error})") from None
        if not isinstance(row, dict):
            raise RunError(f"{file} line {number} is not a JSON object")
        rows.append(row)
    return rows


def check_config(config: dict[str, Any], path: Path) -> None:
    """Every field a later command relies on, checked; RunError naming file and field."""
    where = path / CONFIG
    missing = [k for k in REQUIRED_CONFIG if k not in config]
    if missing:
        raise RunError(f"{where} lacks {', '.join(missing)}")
    shape, classes = config["input_shape"], config["classes"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(_count(n) for n in shape)):
        raise RunError(f"{where}: input_shape must be [C, H, W] of positive integers: {shape}")
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise RunError(f"{where}: classes must be a list of names, got {classes!r}")
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise RunError(f"{where}: classes must be at least two distinct names: {classes}")
    for key in ("mean", "std"):
        values = config[key]
        if not (isinstance(values, list) and len(values) == shape[0]) or not all(
            _number(v) for v in values
        ):
            raise RunError(f"{where}: {key} must be {shape[0]} finite numbers, got {values!r}")
    if not all(v > 0 for v in config["std"]):
        raise RunError(f"{where}: std must be positive (it divides), got {config['std']}")
    if not isinstance(config["data"], str | None):
        raise RunError(f"{where}: data must be a data set name or directory: {config['data']!r}")
    if "epochs" in config:  # a trained run (an imported one has no TrainConfig)
        try:
            TrainConfig.from_dict(config)
        except (ConfigError, TypeError) as error:
            raise RunError(f"{where}: {error}") from None


def _count(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n > 0


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Run:
    """A run directory loaded: `model` is in eval mode with the final weights. `spec` is the
    Spec of a spec run (None for a model from code); `source` says where the model came from
    (a `cnnlab.train.source.ModelSource`, None for a module given to `train` directly)."""

    path: Path
    spec: Any  # cnnlab.design.spec.Spec, or None
    model: nn.Module
    config: dict[str, Any]  # config.json: TrainConfig fields + data, classes, mean, std, ...
    source: Any = None

    @property
    def name(self) -> str:
        """The spec's name, the factory's, or the module's class."""
        if self.spec is not None:
            return self.spec.name
        return self.source.name if self.source is not None else type(self.model).__name__

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.config["classes"])

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.config["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.config["std"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) the model was trained on."""
        return tuple(self.config["input_shape"])

    @property
    def data(self) -> str:
        """The data set the run was trained on (a name or a directory)."""
        return self.config["data"]

    @property
    def precision(self) -> str:
        """ "bf16" or "fp32": what training evaluated in (stored, not re-decided)."""
        return self.config.get("precision_used", "fp32")

    @property
    def autocast(self) -> torch.dtype | None:
        return torch.bfloat16 if self.precision == "bf16" else None

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (0..255) or float ([0, 1]) images `(B, C, H, W)` -> normalized float32,
        with the training split's per-channel mean and std."""
        if images.dim() == 3:
            images = images.unsqueeze(0)  # one image (C, H, W) -> (1, C, H, W)
        return to_float(images, self.mean, self.std)

    def dataset(self, split: str = "test"):
        """The run's data set `split` as an ImageSet, converted to the model's input shape."""
        c, h, w = self.input_shape
        if self.data is None:
            raise RunError(f"{self.path}: the run records no data set (imported without --data)")
        try:
            return load_dataset(self.data, split, channels=c, size=(h, w))
        except CnnlabError as error:
            raise RunError(f"{self.path}: cannot load its data {self.data!r}: {error}") from error

    def metrics(self) -> list[dict[str, Any]]:
        """The rows of metrics.jsonl, one per epoch (empty before the first epoch ends)."""
        return read_metrics(self.path)

    def __repr__(self) -> str:
        c, h, w = self.input_shape
        return (
            f"Run({str(self.path)!r}, model={self.name!r}, {c}×{h}×{w}, "
            f"{len(self.classes)} classes, data={self.data!r})"
        )


def load_run(
    path: str | Path, *, model: nn.Module | None = None, accept_changed: bool | None = None
) -> Run:
    """Read a run directory, checking every file against the others; RunError names the
    missing or broken file and how to fix it.

    model: the module a run trained from a Python object (train(module, ..., out)) used;
    its weights are loaded into it. accept_changed: see `cnnlab.train.source`."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path} is not a run directory (train one: cnnlab train --out {path})")
    config = read_config(path)
    check_config(config, path)
    record = config.get("model") or {"kind": "spec"}
    source = None
    if record.get("kind") == "module" and model is None:
        raise RunError(
            f"{path} was trained from a Python object ({record.get('class')}): in Python, open "
            "it with cnnlab.train.load_run(path, model=<a fresh instance>); for the commands, "
            f"make a run of its code: cnnlab import --model file.py:factory --weights "
            f"{path / MODEL_WEIGHTS} --data {config['data']} --out NEW_RUN"
        )
    if record.get("kind") != "module":
        if record.get("kind") == "spec" and not (path / SPEC).is_file():
            raise RunError(f"{path} has no {SPEC}: it is not a complete run directory")
        source = ModelSource.from_record(record, path, accept_changed)
        model = source.build()
    weights = _weights_file(path)
    state = checkpoint.load_weights(weights)
    differ = weight_mismatch(model.state_dict(), state)
    if differ:
        what = path / SPEC if getattr(source, "kind", "") == "spec" else _model_text(source)
        raise RunError(f"{weights} does not match {what}: {differ}")
    model.load_state_dict(state)
    model.eval()
    _check_outputs(model, config, path, source)  # before the hashes: the more precise message
    _check_hashes(path, weights, config)
    spec = source.spec if source is not None and source.kind == "spec" else None
    return Run(path, spec, model, config, source)


def _weights_file(path: Path) -> Path:
    weights = path / MODEL_WEIGHTS
    if not weights.is_file():
        hint = (
            f"training did not finish; continue it with `cnnlab train --resume --out {path}`"
            if (path / CHECKPOINT_TENSORS).is_file()  # the commit point, not its sidecar
            else "train the run first"
        )
        raise RunError(f"{path} has no {MODEL_WEIGHTS}: {hint}")
    return weights


def _check_hashes(path: Path, weights: Path, config: dict[str, Any]) -> None:
    """The spec and config hashes the weights were saved with, against the files now."""
    with safe_open(weights, framework="pt") as file:
        text = (file.metadata() or {}).get(HASHES_KEY)
    try:
        stored = json.loads(text) if text else {}
    except ValueError:
        raise RunError(f"{weights}: its {HASHES_KEY} metadata is not valid JSON") from None
    spec = path / SPEC
    now = run_hashes(spec.read_text() if spec.is_file() else None, config)
    for key, file in (("spec_sha256", SPEC), ("config_sha256", CONFIG)):
        if key in stored and stored[key] != now[key]:
            raise RunError(
                f"{path / file} was edited after training (its SHA-256 differs from the one "
                f"{MODEL_WEIGHTS} was saved with); restore it, or train again"
            )


def _check_outputs(model: nn.Module, config: dict[str, Any], path: Path, source: Any) -> None:
    """The model runs on its input shape and gives one logit per class of config.json (a
    final softmax is left to training and import to refuse: a run keeps opening)."""
    k, size = len(config["classes"]), "×".join(map(str, config["input_shape"]))
    misfit = classifier_misfit(model, config["input_shape"], k)
    if misfit is None or misfit.kind == "softmax":
        return
    if misfit.kind == "classes" and getattr(source, "kind", "spec") == "spec":
        raise RunError(f"{path / CONFIG} lists {k} classes but the model {misfit.why}")
    what = _model_text(source)
    raise RunError(f"{path}: {what} does not fit its {size} images, {k} classes: {misfit.why}")


def _model_text(source: Any) -> str:  # messages name a model from code by its reference
    return f"the model of {source.reference}" if source is not None else "the model"


def weight_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """'' when `found` fits a model whose state_dict is `expected`, else what differs: the
    first tensor whose shape differs (model's vs file's), then missing and unexpected names."""
    parts = []
    shapes = [k for k in expected if k in found and expected[k].shape != found[k].shape]
    if shapes:
        k = shapes[0]
        more = f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else ""
        parts.append(
            f"tensor {k} is {_shape(expected[k])} in the model but {_shape(found[k])} in the "
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


def _shape(t: torch.Tensor) -> str:
    return "×".join(str(n) for n in t.shape) or "scalar"
