"""A fast, resumable trainer for image classifiers: one config, one loop, one run directory.

Defaults are the recipe of the `fast` preset on Fashion-MNIST (see BENCHMARKS.md, "training",
for the time to 93 % / 94 % test accuracy it reaches, the command and the spread).

What makes it fast on a CPU (each trick is named where it is used):
- the whole split lives in one normalized tensor and is augmented a batch at a time (Loader);
- bf16 autocast where the CPU has bf16 instructions (AVX512-BF16 / AMX), NHWC (channels_last);
- a short triangular one-cycle schedule with Nesterov SGD, label smoothing, weight EMA and
  flip test-time augmentation, which buy accuracy per epoch rather than speed per step.

What makes it resumable: the data order and augmentation of an epoch are a pure function of
(seed, epoch, rank), the learning rate a pure function of the step, and a checkpoint holds
model, EMA, optimizer and RNG states (checkpoint.py, nothing pickled). A run killed at any
moment and resumed ends with bitwise the weights of an uninterrupted one (CPU, same threads).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import platform
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError, DataError, RunError, SpecError, TrainingDiverged
from cnnlab.train import checkpoint, distributed
from cnnlab.train.evaluate import evaluate_tensors

OPTIMIZERS = ("sgd-nesterov", "adamw")
SCHEDULES = ("onecycle", "cosine")
PRECISIONS = ("auto", "bf16", "fp32")
# Files a run directory holds; --force removes exactly these (and nothing else a user keeps).
RUN_FILES = (
    "spec.yaml",
    "config.json",
    "metrics.jsonl",
    "model.safetensors",
    "checkpoint.safetensors",
    "checkpoint.json",
    "report.html",
)
RUN_DIRS = ("figures",)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: a checkpoint was saved; `str()` says how to resume."""


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


@dataclass
class TrainConfig:
    """Every training knob, with the default the `fast` preset is tuned for."""

    epochs: int = 8  # passes over the training split
    batch_size: int = 128  # global batch (split between torchrun ranks); against 256: twice
    # the steps at about the same img/s, +0.65 % val acc after 6 epochs, +0.07 % after 8
    optimizer: str = "sgd-nesterov"  # "sgd-nesterov" | "adamw"
    lr: float = 0.1  # peak learning rate of the schedule (AdamW: try 3e-3)
    momentum: float = 0.9  # SGD momentum; AdamW's beta1
    weight_decay: float = 5e-4  # on conv/linear weights only: decaying BN scales and biases
    # only fights the normalization (AdamW: decoupled, try 0.05)
    schedule: str = "onecycle"  # "onecycle": lr/10 -> lr linearly over warm-up, then
    # linearly to 0 (airbench's triangle); "cosine": 0 -> lr over warm-up, then half-cosine to 0
    warmup: float = 0.2  # fraction of all steps spent warming up
    label_smoothing: float = 0.1  # soft targets: calmer logits (from the orientation recipe;
    # not ablated here)
    translate: int = 2  # random shift by pad-and-crop, pixels (0: off)
    flip: bool = True  # random horizontal flip (turn off for digits and text)
    erase: float = 0.0  # probability of random erasing per image (0: off)
    ema: float | None = 0.99  # weight EMA decay per step, or None; the EMA weights are the
    # ones evaluated and saved (smooths the last noisy steps; not ablated here)
    tta: bool = True  # evaluate on the image and its mirror image, averaging the logits:
    # +0.12 to +0.24 % test acc in 4 runs of 8 epochs (reported, not tuned on)
    tta_shift: int = 0  # with tta, also average the views moved by this many pixels up,
    # down, left, right (10 views, 5x the evaluation): +0.12 to +0.3 % val acc for 3 models
    # of 14-17 epochs; off by default, the time-to-accuracy recipe sets 1
    precision: str = "auto"  # "auto": bf16 autocast where the hardware has bf16 math, else
    # fp32; "bf16" or "fp32" to force. bf16: 922 vs 351 img/s fp32 (2.6×) for `fast`,
    # batch 256, channels_last, one AVX512-BF16 core (a loaded machine)
    channels_last: bool = True  # NHWC memory layout: oneDNN's fast convolution path
    compile: bool = False  # torch.compile the model (compiles in the first steps; not
    # measured here)
    val_fraction: float = 0.1  # held-out share of the training set, stratified and seeded
    seed: int = 0  # seeds weights, split, order and augmentation
    diagnose_every: int = 0  # every N epochs store cnnlab.diagnose.epoch_diagnostics (0: off)
    eval_batch_size: int = 256  # batch size at evaluation: 0.94 s for 10k test images
    # against 1.9 s at 1024 (bf16, channels-last, 2 cores: 256 stays in cache)

    def __post_init__(self) -> None:
        choices = {
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "precision": PRECISIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"{name} {getattr(self, name)!r} is not one of {', '.join(allowed)}"
                )
        positive = ("epochs", "batch_size", "eval_batch_size")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        checks = {
            "weight_decay": self.weight_decay >= 0,
            "momentum": 0 <= self.momentum < 1,
            "warmup": 0 <= self.warmup < 1,
            "label_smoothing": 0 <= self.label_smoothing < 1,
            "translate": self.translate >= 0,
            "tta_shift": self.tta_shift >= 0,
            "erase": 0 <= self.erase <= 1,
            "val_fraction": 0 <= self.val_fraction < 1,
            "diagnose_every": self.diagnose_every >= 0,
            "ema": self.ema is None or 0 < self.ema < 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"{name} {getattr(self, name)!r} is out of range")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config stored in a run's config.json (other keys there are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# --- precision and schedule --------------------------------------------------------------


def bf16_supported(device: torch.device | str = "cpu") -> bool:
    """True when bf16 autocast runs natively: CUDA with bf16, or a CPU whose oneDNN has bf16
    kernels (AVX512-BF16 / AMX; elsewhere bf16 is emulated and slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        conv = nn.Conv2d(1, 2, 3)  # a tiny bf16 conv must run, not only be advertised
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return conv(torch.zeros(1, 1, 5, 5)).dtype == torch.bfloat16
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 or None (fp32) for `config.precision` on `device`."""
    if config.precision == "fp32":
        return None
    if config.precision == "bf16" or bf16_supported(device):
        return torch.bfloat16
    return None


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate at optimizer step `step` of `total_steps`: a pure function of the step,
    so a resumed run needs no scheduler state."""
    t = step / max(1, total_steps)
    w = config.warmup
    if t < w:
        start = 0.1 if config.schedule == "onecycle" else 0.0
        return config.lr * (start + (1 - start) * t / w)
    rest = (t - w) / (1 - w)  # 0 -> 1 after the warm-up
    if config.schedule == "onecycle":
        return config.lr * (1 - rest)
    return config.lr * 0.5 * (1 + math.cos(math.pi * rest))


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD-Nesterov or AdamW with weight decay on weights of ndim ≥ 2 only (conv, linear)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999))
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)


class EMA:
    """Exponential moving average of the weights: ema ← d·ema + (1−d)·w after every step.

    d = min(decay, (1 + t) / (10 + t)) at update t, so early averages do not cling to the
    random initialisation. Buffers (BatchNorm statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, t: int) -> None:
        d = min(self.decay, (1 + t) / (10 + t))
        ema = list(self.model.parameters())
        torch._foreach_lerp_(ema, [p.detach() for p in model.parameters()], 1 - d)
        self.copy_buffers(model)

    @torch.no_grad()
    def copy_buffers(self, model: nn.Module) -> None:
        for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)


# --- the run directory -------------------------------------------------------------------


def _prepare_out(out: Path, resume: bool, force: bool) -> None:
    """Refuse to overwrite a run unless asked (--resume or --force). Deletes nothing: with
    --force the previous run goes only once the new one has passed its checks (_clear_out)."""
    if resume:
        if not (out / "config.json").is_file():
            raise RunError(f"cannot resume {out}: it has no config.json (is it a run directory?)")
        return
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise RunError(
            f"{out} already exists; pass --resume to continue that run or --force to "
            "start again (--force deletes its run files)"
        )


def _clear_out(out: Path) -> None:
    """The run directory, emptied of a previous run's files (the user's own files stay)."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in RUN_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _data_name(data: Any) -> Any:
    """How config.json names `data`: a directory by its absolute path (so eval, --resume and
    report work from any working directory), a data set name as given (as load_dataset, a
    name wins over a directory of that name in the working directory)."""
    from cnnlab.data.sets import dataset_name

    if isinstance(data, str | Path) and dataset_name(data) is not None:
        return data
    if isinstance(data, str | Path) and Path(data).expanduser().is_dir():
        return str(Path(data).expanduser().resolve())
    return data


def _load_data(data: Any, input_shape: tuple[int, int, int] | None, strict: bool):
    """(train ImageSet, test ImageSet or None, name stored in config.json). input_shape None
    (a model given as a module): the data set's own channels and size."""
    from cnnlab.data import ImageSet, load_dataset

    if isinstance(data, ImageSet):
        return data, None, data.source
    if isinstance(data, tuple) and len(data) == 2:
        return data[0], data[1], data[0].source
    name = str(_data_name(data))
    shape = {} if input_shape is None else {"channels": input_shape[0], "size": input_shape[1:]}
    train_set = load_dataset(name, "train", strict=strict, **shape)
    if input_shape is None:  # the test split converted to what the model trains on
        shape = {"channels": train_set.shape[0], "size": tuple(train_set.shape[1:])}
    try:
        test_set = load_dataset(name, "test", strict=strict, **shape)
    except DataError:
        if strict or not Path(name).is_dir():
            raise
        test_set = None  # an image folder too small for a test part: report val accuracy only
    return train_set, test_set, name


def _data_notes(*sets) -> dict[str, list[list[str]]]:
    """The files a folder loader skipped (unreadable) or converted, as `[path, why]` lists."""
    sets = [ds for ds in sets if ds is not None]
    return {
        "skipped": [list(item) for ds in sets for item in ds.skipped],
        "converted": [list(item) for ds in sets for item in ds.converted],
    }


def _check_steps(n_train: int, config: TrainConfig, world_size: int) -> None:
    """An epoch drops the last short batch: fewer images per rank than a batch is no step."""
    per_rank = n_train // world_size
    if per_rank >= config.batch_size // world_size:
        return
    ranks = f" per rank ({world_size} ranks)" if world_size > 1 else ""
    fix = f"use --batch-size {per_rank * world_size} or less, or more data" if per_rank else ""
    raise ConfigError(
        f"batch_size {config.batch_size} is larger than the {per_rank} training images"
        f"{ranks} left after the validation split, so an epoch would have no step (the last "
        f"short batch is dropped); {fix or 'use more training images'}"
    )


def _check_fit(name: str, input_shape, model: nn.Module, train_set, config: TrainConfig) -> None:
    """Data shape, class count and the image-size options against the model, before any
    time is spent (a bad --tta-shift would otherwise fail after all the training)."""
    side = min(input_shape[1:])
    for option, pixels in (("translate", config.translate), ("tta_shift", config.tta_shift)):
        if pixels >= side:
            raise ConfigError(
                f"{option} {pixels} must be smaller than the {side}-px side of the "
                f"{'×'.join(map(str, input_shape[1:]))} images (reflect padding); use at most "
                f"{side - 1}"
            )
    if tuple(train_set.shape) != tuple(input_shape):
        raise DataError(
            f"{train_set.source} has {'×'.join(map(str, train_set.shape))} images but "
            f"{name} expects input {list(input_shape)}"
        )
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(2, *input_shape))
    except RuntimeError as error:  # a module of the user's that does not take this input
        raise SpecError(
            f"{name} cannot run on {'×'.join(map(str, input_shape))} images: "
            f"{str(error).splitlines()[0]}"
        ) from error
    model.train()
    if out.dim() != 2 or out.shape[1] != len(train_set.classes):
        k = len(train_set.classes)
        spec_fix = f"end the spec with `linear: {k}`"
        fix = spec_fix if name.startswith("spec") else f"give it a head of {k} outputs"
        raise SpecError(
            f"{name} outputs {tuple(out.shape[1:])} per image but the data has {k} classes; {fix}"
        )


def _resume_inputs(out: Path, spec: Any, data: Any, config: TrainConfig | None):
    """The spec, data and config stored in `out`; RunError when the caller's differ."""
    from cnnlab.design.spec import load_spec

    stored = json.loads((out / "config.json").read_text())
    stored_config = TrainConfig.from_dict(stored)
    if config is not None and config != stored_config:
        changed = [
            f"{k} {v!r} (run has {getattr(stored_config, k)!r})"
            for k, v in config.to_dict().items()
            if getattr(stored_config, k) != v
        ]
        raise RunError(
            f"cannot resume {out} with different options: {', '.join(changed)}; resume without "
            "them or start a new run"
        )
    stored_spec = load_spec(out / "spec.yaml")
    if spec is not None and load_spec(spec).to_dict() != stored_spec.to_dict():
        raise RunError(f"cannot resume {out} with a different spec than its spec.yaml")
    if data is None:
        data = stored["data"]
    elif isinstance(data, str | Path) and str(_data_name(data)) != stored["data"]:
        raise RunError(
            f"cannot resume {out} on data {data!r}: it was trained on {stored['data']!r}"
        )
    return stored_spec, data, stored_config


def _read_metrics(path: Path, upto_epoch: int) -> list[dict]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("epoch", 0) <= upto_epoch]


def _write_metrics(path: Path, rows: list[dict]) -> None:
    checkpoint.atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


# --- Ctrl-C ------------------------------------------------------------------------------


class _StopFlag:
    """SIGINT sets a flag the loop checks between steps, so a checkpoint never holds a
    half-updated optimizer; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.set = False
        self._previous = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# --- training ----------------------------------------------------------------------------


def train(
    model_or_spec: Any,
    data: Any,
    out: str | Path | None = None,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    strict: bool = False,
    progress: Any = None,
    on_epoch: Callable[[dict[str, Any], int], None] | None = None,
) -> dict[str, Any]:
    """Train a model on `data`, writing the run directory `out`; return the final metrics.

    model_or_spec: a Spec, preset name or spec file (see cnnlab.load_spec), or an nn.Module
    (trained in place, from the weights it has; its input shape is the data's; the run
    directory records its class but cannot rebuild it); data: "fashion-mnist",
    "digits", "shapes", an image-folder path, an ImageSet, or a (train, test) pair of them.
    out: None trains without writing anything (no run directory, no checkpoints, no
    per-epoch file writes): for quick experiments on tiny models.
    resume: continue from out/checkpoint.* (spec, data and config come from the run;
    passing different ones is an error). force: replace an existing run.
    strict: an unreadable image in an image folder is a DataError (default: skipped).
    progress: a rich.progress.Progress to report to (None: silent).
    on_epoch: called on the main rank as `on_epoch(row, epochs)` after each epoch, with the
    metrics.jsonl row (epoch, train_loss, train_acc, val_acc, img_per_s, seconds, ...).
    Returns {"val_acc", "test_acc", "test_acc_tta", "train_seconds", "img_per_s", ...,
    "skipped": [[path, reason]] of unreadable folder images, "converted": [[path, change]]
    of folder images whose mode or size changed (both also in config.json),
    "model": the trained nn.Module (EMA weights when EMA is on, eval mode)}.
    Raises TrainingDiverged on a NaN/inf loss, TrainingInterrupted (a KeyboardInterrupt)
    after saving a checkpoint on Ctrl-C, RunError/DataError/SpecError on bad input.
    """
    if out is None and resume:
        raise ConfigError("resume needs the run directory `out` to resume from")
    out = None if out is None else Path(out)
    dist = distributed.setup()
    try:
        hooks = {"strict": strict, "progress": progress, "on_epoch": on_epoch}
        return _train(model_or_spec, data, out, config, resume, force, hooks, dist)
    finally:
        distributed.teardown(dist)


def _train(spec, data, out, config, resume, force, hooks, dist) -> dict[str, Any]:
    from cnnlab.data import Augment, Loader, normalization_stats, to_float, train_val_split
    from cnnlab.design.build import build
    from cnnlab.design.spec import load_spec

    refusal = None
    writes = out is not None and dist.is_main  # rank 0 of a run with a directory
    if writes:
        try:
            _prepare_out(out, resume, force)
        except RunError as error:
            refusal = str(error)
    # Every rank learns rank 0's verdict: a rank must not wait at a barrier for one that gave up.
    refusal = distributed.broadcast_object(refusal, dist)
    if refusal is not None:
        raise RunError(refusal)
    module = spec if isinstance(spec, nn.Module) else None
    if resume:
        spec, data, config = _resume_inputs(out, None if module else spec, data, config)
    elif module is None:
        spec = load_spec(spec)
    config = config or TrainConfig()
    if config.batch_size % dist.world_size:
        raise ConfigError(
            f"batch_size {config.batch_size} does not split evenly between "
            f"{dist.world_size} ranks; use a multiple of {dist.world_size}"
        )

    # data: seeded split, statistics of the training split only
    train_set, test_set, name = _load_data(
        data, None if module is not None else tuple(spec.input), hooks["strict"]
    )
    input_shape = tuple(train_set.shape) if module is not None else tuple(spec.input)
    notes = _data_notes(train_set, test_set)
    if config.val_fraction > 0:
        train_part, val_part = train_val_split(train_set, config.val_fraction, config.seed)
    else:
        train_part, val_part = train_set, None
    _check_steps(len(train_part), config, dist.world_size)
    mean, std = normalization_stats(train_part)

    torch.manual_seed(config.seed)  # the spec's initial weights
    model = module if module is not None else build(spec)
    # training's own randomness (dropout) starts from the seed whatever built the model, so
    # a module built from a spec trains exactly as that spec does
    torch.manual_seed(config.seed)
    title = f"model {type(module).__name__}" if module is not None else f"spec {spec.name!r}"
    _check_fit(title, input_shape, model, train_set, config)
    device = dist.device
    memory = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory)
    amp = autocast_dtype(config, device)

    if writes and not resume:
        _clear_out(out)  # every check passed: only now does --force remove the old run
        if module is None:
            checkpoint.atomic_write(out / "spec.yaml", spec.to_yaml().encode())
        kind = type(module)
        info = {
            **({"model": {"module": f"{kind.__module__}.{kind.__qualname__}"}} if module else {}),
            **config.to_dict(),
            "data": name,
            **notes,
            "classes": list(train_set.classes),
            "mean": list(mean),
            "std": list(std),
            "input_shape": list(input_shape),
            "precision_used": "bf16" if amp else "fp32",
            "world_size": dist.world_size,
            "torch": torch.__version__,
            "machine": machine(device),
        }
        checkpoint.write_json(out / "config.json", info)
        _write_metrics(out / "metrics.jsonl", [])

    def normalized(ds):
        return to_float(ds.images, mean, std).to(device)

    augment = Augment(pad=config.translate, flip=0.5 if config.flip else 0.0, erase=config.erase)
    loader = Loader(
        normalized(train_part),
        train_part.labels,
        config.batch_size // dist.world_size,
        augment=augment,
        seed=config.seed,
        drop_last=True,  # equal-sized steps; every image is still seen across epochs
        channels_last=config.channels_last,
        device=device,
        rank=dist.rank,
        world_size=dist.world_size,
    )
    steps_per_epoch = distributed.all_reduce_min(len(loader), dist)
    total_steps = steps_per_epoch * config.epochs
    val = (normalized(val_part), val_part.labels.to(device)) if val_part is not None else None

    optimizer = make_optimizer(model, config)
    ema = EMA(model, config.ema) if config.ema else None
    net = distributed.wrap(model, dist)
    if config.compile:
        net = torch.compile(net)

    state = {"epoch": 0, "step": 0, "partial": [0.0, 0.0, 0, 0.0], "wall": 0.0}
    rows: list[dict] = []
    if resume:
        state, rows = _restore(out, model, ema, optimizer, device)

    def save(epoch: int, step: int, partial: list, wall: float) -> None:
        if out is None:
            return
        if dist.is_main:
            _save(out, model, ema, optimizer, epoch, step, partial, wall)
        distributed.barrier(dist)

    progress = hooks["progress"]
    on_epoch = hooks["on_epoch"] if dist.is_main else None
    task = None
    if progress is not None and dist.is_main:
        done = state["epoch"] * steps_per_epoch + state["step"]
        task = progress.add_task(
            "training", total=total_steps, completed=done, loss=float("nan"), acc=0.0, ips=0.0
        )

    start_wall = time.perf_counter() - state["wall"]
    with _StopFlag() as stop:
        for epoch in range(state["epoch"], config.epochs):
            first_step = state["step"] if epoch == state["epoch"] else 0
            partial = state["partial"] if epoch == state["epoch"] else [0.0, 0.0, 0, 0.0]
            loader.set_epoch(epoch, first_step)
            model.train()
            loss_sum, correct, seen, seconds = partial
            tick = time.perf_counter()
            for step, (x, y) in zip(range(first_step, steps_per_epoch), loader, strict=False):
                global_step = epoch * steps_per_epoch + step
                lr = learning_rate(config, global_step, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with torch.autocast(device.type, dtype=amp or torch.float32, enabled=bool(amp)):
                    logits = net(x)  # (B, classes)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
                loss_value = loss.item()
                bad = not math.isfinite(loss_value)
                if distributed.any_rank(bad, dist):
                    raise _diverged(loss_value, epoch, step, lr, config, state["epoch"], out)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if ema is not None:
                    ema.update(model, global_step)
                loss_sum += loss_value * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
                if task is not None:
                    elapsed = seconds + time.perf_counter() - tick
                    progress.update(
                        task,
                        advance=1,
                        description=f"epoch {epoch + 1}/{config.epochs}",
                        loss=loss_sum / seen,
                        acc=correct / seen,
                        ips=seen * dist.world_size / max(elapsed, 1e-9),
                    )
                if distributed.any_rank(stop.set, dist):
                    seconds += time.perf_counter() - tick
                    wall = time.perf_counter() - start_wall
                    save(epoch, step + 1, [loss_sum, correct, seen, seconds], wall)
                    saved = (
                        f"checkpoint saved in {out}: continue with --resume"
                        if out is not None
                        else "nothing saved (no run directory)"
                    )
                    raise TrainingInterrupted(
                        f"interrupted at epoch {epoch + 1}, step {step + 1}; {saved}"
                    )
            seconds += time.perf_counter() - tick
            distributed.broadcast_buffers(model, dist)
            if ema is not None:
                ema.copy_buffers(model)
            row = _epoch_row(
                epoch, [loss_sum, correct, seen], seconds, lr, model, ema, val, config, amp, dist
            )
            if config.diagnose_every and (epoch + 1) % config.diagnose_every == 0:
                row["diagnose"] = _diagnose(model, loader, epoch)
            row["wall"] = round(time.perf_counter() - start_wall, 3)
            rows.append(row)
            state = {"epoch": epoch + 1, "step": 0, "partial": [0.0, 0.0, 0, 0.0]}
            save(epoch + 1, 0, [0.0, 0.0, 0, 0.0], row["wall"])
            if writes:
                _write_metrics(out / "metrics.jsonl", rows)
            if on_epoch is not None:
                on_epoch(row, config.epochs)

    final = ema.model if ema is not None else model
    final.eval()
    result = _finish(out, final, rows, test_set, mean, std, config, amp, dist)
    result.update(notes)
    result["model"] = final
    return result


def _diverged(loss, epoch, step, lr, config, good_epoch, out) -> TrainingDiverged:
    """The advice is to start again: --resume refuses other options, and with the same ones
    it replays the same steps (the run is deterministic) into the same NaN."""
    kept = (
        "nothing was written (no run directory)"
        if out is None
        else f"the last good checkpoint (epoch {good_epoch}) is kept in {out}"
        if good_epoch
        else "no epoch finished, so there is no checkpoint"
    )
    return TrainingDiverged(
        f"the training loss became {loss} at epoch {epoch + 1}, step {step + 1} "
        f"(lr {lr:.3g}): the learning rate is probably too high; start again with "
        f"--force --lr {config.lr / 10:.3g} (or --force and a longer --warmup); {kept}"
    )


def _epoch_row(epoch, sums, seconds, lr, model, ema, val, config, amp, dist) -> dict:
    """One metrics.jsonl row: training sums all-reduced over ranks, validation on the EMA."""
    loss_sum, correct, seen = distributed.all_reduce_sum(sums, dist)
    row = {
        "epoch": epoch + 1,
        "train_loss": loss_sum / seen,
        "train_acc": correct / seen,
        "lr": lr,
        "seconds": round(distributed.all_reduce_sum([seconds], dist)[0] / dist.world_size, 3),
        "img_per_s": round(seen / max(seconds, 1e-9), 1),
    }
    if val is not None:
        evaluated = ema.model if ema is not None else model
        v_loss, v_correct, v_n = _sharded_eval(evaluated, *val, config, amp, dist, tta=False)
        row["val_loss"], row["val_acc"] = v_loss / v_n, v_correct / v_n
        model.train()
    return row


def _sharded_eval(model, images, labels, config, amp, dist, tta) -> tuple[float, float, int]:
    """(loss sum, correct, count) over all ranks, each rank evaluating every world_size-th."""
    mine = slice(dist.rank, None, dist.world_size)
    sums = evaluate_tensors(
        model,
        images[mine],
        labels[mine],
        batch_size=config.eval_batch_size,
        tta=tta,
        autocast=amp,
        channels_last=config.channels_last,
        tta_shift=config.tta_shift if tta else 0,
    )
    loss_sum, correct, n = distributed.all_reduce_sum(list(sums), dist)
    return loss_sum, correct, int(n)


def _diagnose(model: nn.Module, loader, epoch: int) -> dict:
    """G's per-epoch diagnostics on the first training batch, RNG state left untouched."""
    from cnnlab.diagnose import epoch_diagnostics

    rng = torch.get_rng_state()
    loader.set_epoch(epoch)
    x, y = next(iter(loader))
    try:
        return epoch_diagnostics(model, x, y)
    finally:
        torch.set_rng_state(rng)
        model.train()


def _finish(out, model, rows, test_set, mean, std, config, amp, dist) -> dict:
    """Test accuracy with and without flip TTA (reporting only), model.safetensors."""
    from cnnlab.data import to_float

    result: dict[str, Any] = {"out": None if out is None else str(out), "epochs": len(rows)}
    if rows:
        last = rows[-1]
        result.update({k: last[k] for k in ("train_loss", "train_acc") if k in last})
        result.update({k: last[k] for k in ("val_loss", "val_acc") if k in last})
        result["train_seconds"] = round(sum(r["seconds"] for r in rows), 3)
        result["wall_seconds"] = last.get("wall")
        result["img_per_s"] = round(sum(r["img_per_s"] for r in rows) / len(rows), 1)
    if test_set is not None:
        x = to_float(test_set.images, mean, std).to(dist.device)
        y = test_set.labels.to(dist.device)
        loss, correct, n = _sharded_eval(model, x, y, config, amp, dist, tta=False)
        result["test_loss"], result["test_acc"] = loss / n, correct / n
        if config.tta:
            _, correct, n = _sharded_eval(model, x, y, config, amp, dist, tta=True)
            result["test_acc_tta"] = correct / n
    if rows:
        rows[-1].update({k: v for k, v in result.items() if k.startswith("test_")})
    if out is not None and dist.is_main:
        checkpoint.save_weights(out / checkpoint.MODEL_WEIGHTS, model.state_dict())
        if rows:
            _write_metrics(out / "metrics.jsonl", rows)
    distributed.barrier(dist)
    return result


def _save(out, model, ema, optimizer, epoch, step, partial, wall) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.model.state_dict().items()})
    opt_tensors, opt_rest = checkpoint.split_optimizer_state(optimizer.state_dict())
    tensors.update(opt_tensors)
    state = {
        "epoch": epoch,  # epochs completed
        "step": step,  # steps done in the next epoch (> 0 after Ctrl-C mid-epoch)
        "partial": partial,  # that epoch's running [loss sum, correct, seen, seconds]
        "wall": wall,
        "optimizer": opt_rest,
        "rng": checkpoint.rng_state(),
    }
    checkpoint.save_checkpoint(out, tensors, state)


def _restore(out, model, ema, optimizer, device) -> tuple[dict, list[dict]]:
    """Load out/checkpoint.* into model, EMA and optimizer; return (loop state, metric rows)."""
    tensors, state = checkpoint.load_checkpoint(out)
    model.load_state_dict(checkpoint.prefixed(tensors, "model"))
    if ema is not None:
        ema.model.load_state_dict(checkpoint.prefixed(tensors, "ema"))
    opt = {k: v.to(device) for k, v in tensors.items() if k.startswith("optimizer.")}
    optimizer.load_state_dict(checkpoint.join_optimizer_state(opt, state["optimizer"]))
    checkpoint.set_rng_state(state["rng"])
    rows = _read_metrics(out / "metrics.jsonl", state["epoch"])
    return state, rows
