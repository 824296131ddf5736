"""A fast, resumable trainer for image classifiers: one config, one loop, one run directory.

Read top to bottom: `train` opens the run directory (locked, checked before any data is
loaded), resolves the model (a spec, the user's code or a module), loads the data, builds the
objects of the run (`Parts`), then runs epochs of steps, each step one forward, one fused
check of the flags every rank must agree on (diverged, stop, checkpoint due), one backward.
What an epoch and the run measure (metrics rows, validation, the final test) is measure.py's.

What makes it fast on a CPU (each trick is named where it is used):
- the whole split lives in one normalized tensor and is augmented a batch at a time (Loader);
- bf16 autocast where the CPU has bf16 instructions (AVX512-BF16 / AMX), NHWC (channels_last),
  with the layers whose bf16 kernels are slower kept in fp32 (fp32_layers.py);
- a short triangular one-cycle schedule with Nesterov SGD, label smoothing, weight EMA and
  flip test-time augmentation, which buy accuracy per epoch rather than speed per step.

What makes it resumable: the data order and augmentation of an epoch are a pure function of
(seed, epoch, rank), the learning rate a pure function of the step, and a checkpoint holds
model, EMA, optimizer and RNG states and the metrics rows (checkpoint.py, nothing pickled).
A checkpoint is written after every epoch and every `checkpoint_seconds` within one, so a
kill at any moment after the first such interval leaves one; a run killed and resumed ends
with bitwise the weights and metrics of an uninterrupted one (CPU, same threads and ranks).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.data import Augment, Loader, to_float
from cnnlab.errors import ConfigError, RunError
from cnnlab.inspect.alone import batch_note
from cnnlab.train import checkpoint, checkpointing, distributed, fp32_layers, guard, measure
from cnnlab.train.config import TrainConfig, autocast_dtype, learning_rate, make_optimizer
from cnnlab.train.datanotes import (
    shared_images_note,
    split_folder_note,
    test_split_note,
    unseen_classes_note,
)
from cnnlab.train.fit import layout_note, untrained_note
from cnnlab.train.inputs import (
    check_arguments,
    choose_model,
    make_splits,
    memory_record,
    resolve_flip,
    resume_inputs,
)
from cnnlab.train.resume import check_same_data
from cnnlab.train.run import holdout_record
from cnnlab.train.rundir import RunDir, read_config
from cnnlab.train.state import EMA, Parts, Position, Request, Splits, Sums


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training: a checkpoint was saved; `str()` says how to resume."""


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
    checkpoint_seconds: float = 60.0,
) -> dict[str, Any]:
    """Train a model on `data`, writing the run directory `out`; return the final metrics.

    model_or_spec: a Spec, preset name or spec file (see cnnlab.load_spec); a
    `cnnlab.train.source.ModelSource` (the user's code, recorded so every command rebuilds
    it); or an nn.Module, trained in place from the weights it has (its input shape is the
    data's; `load_run(out, model=...)` reopens such a run). data: "fashion-mnist", "digits",
    "shapes", an image-folder path, an ImageSet, or a (train, test) pair of them.
    out: None trains without writing anything (no run directory, no checkpoints, no
    per-epoch file writes): for quick experiments on tiny models.
    resume: continue from out/checkpoint.* (model, data and config come from the run;
    passing different ones is an error). force: replace an existing run (only the files
    cnnlab wrote are deleted). strict: an unreadable image in an image folder is a DataError.
    progress: a rich.progress.Progress to draw a folder's reading and the epochs on (None:
    silent). on_epoch: called on the main rank as `on_epoch(row, epochs)` after each epoch.
    checkpoint_seconds: also checkpoint within an epoch once this long has passed.
    Returns {"val_acc", "test_acc", "test_acc_tta", "train_seconds", "img_per_s", ...,
    "skipped"/"converted": [[path, why]] of folder images, "notes": [what a resume or the flip
    rule changed, which layers ran in fp32 within bf16, outputs that are no plain logits
    (`guard.output_notes`)], "outcome": [a guessing test accuracy (`measure.guess_note`)],
    "model": the trained nn.Module, the one passed in (EMA weights when EMA is on, eval mode)}.
    Raises TrainingDiverged on a NaN/inf or runaway loss, TrainingInterrupted (a
    KeyboardInterrupt) after saving a checkpoint on Ctrl-C/SIGTERM, and
    RunError/DataError/SpecError/ConfigError on bad input.
    """
    check_arguments(out, config, on_epoch)  # before Path(out) takes an int for a path
    request = Request(
        model_or_spec, data, None if out is None else Path(out), config, resume, force,
        strict, progress, on_epoch, checkpoint_seconds,
    )  # fmt: skip
    if out is None and (resume or force):
        raise ConfigError("resume and force need the run directory `out`")
    if not checkpoint_seconds >= 0:
        raise ConfigError(f"checkpoint_seconds must be ≥ 0, got {checkpoint_seconds}")
    dist = distributed.setup()
    run = None
    try:
        run = _open_run(request, dist)
        result = _train(request, run, dist)
    except BaseException as error:
        if run is not None:
            run.close(failed=True)
        raise distributed.as_rank_lost(error, dist, request.out)  # noqa: B904 - it, or its RankLost
    finally:
        distributed.teardown(dist)
    if run is not None:
        run.close()
    return result


def _open_run(request: Request, dist) -> RunDir | None:
    """Rank 0 opens (and locks) `out`; every rank learns its verdict, so none waits at a
    barrier for one that gave up."""
    run, refusal = None, None
    if request.out is not None and dist.is_main:
        try:
            run = RunDir.open(request.out, resume=request.resume, force=request.force)
        except RunError as error:
            refusal = str(error)
    refusal = distributed.broadcast_object(refusal, dist)
    if refusal is not None:
        raise RunError(refusal)
    return run


def _train(request: Request, run: RunDir | None, dist) -> dict:
    """Inputs, data, parts, then the training (`_trained`)."""
    with distributed.together(dist):  # a rank whose data or checks fail stops the others
        choice, splits, config, notes = _inputs(request, dist)
    # training's own randomness (dropout) starts from the seed whatever built the model, so
    # a module built from a spec trains exactly as that spec does
    torch.manual_seed(config.seed)
    parts = _parts(choice.model, splits, config, run, dist, request)
    notes += distributed.static_graph_note(parts.net, choice.title)
    try:
        return _trained(parts, splits, request, run, choice, notes)
    except BaseException:
        fp32_layers.restore(parts.model)  # the caller's module as it was, even on failure
        raise


def _inputs(request: Request, dist) -> tuple:
    """(model choice, splits, config, notes): the model, its data and their checks."""
    if request.resume:
        choice, data, config = resume_inputs(
            request.out, request.model_or_spec, request.data, request.config
        )
    else:
        config = request.config or TrainConfig()
        choice, data = choose_model(request.model_or_spec, config.seed), request.data
    if config.batch_size % dist.world_size:
        raise ConfigError(
            f"batch_size {config.batch_size} does not split evenly between "
            f"{dist.world_size} ranks; use a multiple of {dist.world_size}"
        )
    progress = request.progress if dist.is_main else None  # an image folder's reading
    splits, config = make_splits(data, choice, config, request.strict, dist, progress)
    if request.resume:
        check_same_data(request.out, splits)  # before a step: the run's own images or none
    config, notes = resolve_flip(config, splits.name)
    notes += layout_note(choice.title, choice.layout.get("channels_last_refused"))
    if choice.spec is None:  # a spec's BatchNorm keeps running statistics
        notes += batch_note(choice.model, tuple(splits.train.shape), choice.title)
        notes += untrained_note(choice, tuple(splits.train.shape))
    notes += unseen_classes_note(splits.train) + shared_images_note(splits.train, splits.test)
    notes += test_split_note(data) + split_folder_note(splits.name)
    return choice, splits, config, notes


def _trained(parts: Parts, splits: Splits, request: Request, run, choice, notes) -> dict:
    """A new run's files or a resumed run's state; epochs; the end."""
    position, resumed = Position(), []
    with distributed.together(parts.dist):  # rank 0's writes: a failure stops all at once
        if run is not None and not request.resume:
            _start(run, request, choice, splits, parts)
        if request.resume:
            if run is not None:
                run.reopen()  # temp files of a kill removed; the run's hashes for its weights
            position, resumed = checkpointing.restore(parts, choice.record)
            epochs = parts.config.epochs
            # its weights written: finished (a kill after the last checkpoint left none, and
            # the resume finishes it); the table alone looked like a training
            if position.epoch >= epochs and (parts.out / checkpoint.MODEL_WEIGHTS).is_file():
                resumed.append(
                    f"the run had already trained its {epochs} epoch{'s' * (epochs != 1)}, "
                    "so nothing was trained: its final evaluation was made again (to train "
                    "longer, start a new run with more --epochs)"
                )
    try:
        said = _run_epochs(parts, position, request)  # a failed write says its way on
        result = measure.finish(parts, position.rows, splits)
    except KeyboardInterrupt as stop:  # not one the loop answered: say what is kept
        if isinstance(stop, TrainingInterrupted):
            raise
        raise TrainingInterrupted(guard.stopped(parts.out)) from None
    result.update(splits.notes)
    few = measure.few_steps_note(len(splits.train), parts.config, parts.steps_per_epoch)
    # the recipe's step count is said by the run that chose it; a resume says what changed
    told = [] if request.resume else few
    result["notes"] = resumed + notes + said + _fp32_note(parts.fp32_layers) + told
    result["outcome"] = measure.guess_note(
        result.get("test_acc"), splits.test, parts.config, said + few
    )
    result["model"] = parts.handed_back()
    return result


def _start(run: RunDir, request: Request, choice, splits: Splits, parts: Parts) -> None:
    """A new run's files (rank 0): the old run removed (--force), spec and config.json."""
    given = memory_record(request.data)  # may read a data set: before --force deletes
    run.clear()  # every check passed: only now does --force remove the old run
    try:
        record = {**_run_config(choice, parts.config, splits, parts), **choice.layout}
        run.start(choice.spec_text, {**record, **given})
    except RunError as error:
        raise guard.way_on(error, run.path) from error


def _run_config(choice, config: TrainConfig, splits: Splits, parts: Parts) -> dict:
    """config.json of a new run: the model's record, every knob, the data and its
    statistics, and where it trained."""
    return {
        "model": choice.record,
        **config.to_dict(),
        "data": splits.name,
        **holdout_record(splits.name),
        **splits.notes,
        "classes": list(splits.classes),
        "mean": list(splits.mean),
        "std": list(splits.std),
        "input_shape": list(splits.train.shape),
        "precision_used": "bf16" if parts.amp else "fp32",
        "fp32_layers": list(parts.fp32_layers),  # computed in fp32 under bf16 autocast
        "world_size": parts.dist.world_size,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": distributed.machine(parts.dist.device),
    }


def _parts(model, splits: Splits, config, run, dist, request: Request) -> Parts:
    """Model on its device and memory layout, optimizer, EMA, loader, validation tensors."""
    device = dist.device
    memory = torch.channels_last if config.channels_last else torch.contiguous_format

    def normalized(ds):
        return to_float(ds.images, splits.mean, splits.std).to(device)

    with distributed.together(dist):  # one rank out of memory here stops the others
        model = model.to(device, memory_format=memory)  # NHWC: oneDNN's fast convolution path
        flip = 0.5 if config.flip else 0.0
        augment = Augment(pad=config.translate, flip=flip, erase=config.erase)
        loader = Loader(
            normalized(splits.train),
            splits.train.labels,
            config.batch_size // dist.world_size,
            augment=augment,
            seed=config.seed,
            drop_last=True,  # equal-sized steps; every image is still seen across epochs
            channels_last=config.channels_last,
            device=device,
            rank=dist.rank,
            world_size=dist.world_size,
        )
        val = splits.val
        val = (normalized(val), val.labels.to(device)) if val is not None else None
        amp = autocast_dtype(config, device)
        kept = _kept_fp32(model, amp, device, request)
        fp32_layers.restore(model)  # a load_run model's fp32 layers: only `kept` is recorded
        fp32_layers.keep_fp32(model, kept)  # before the EMA's copy and DDP's wrapper
    net = distributed.wrap(model, dist, splits.train.shape)
    if config.compile:
        net = torch.compile(net)
    return Parts(
        config=config,
        dist=dist,
        run=run,
        model=model,
        net=net,
        ema=EMA(model, config.ema) if config.ema else None,
        optimizer=make_optimizer(model, config),
        loader=loader,
        val=val,
        amp=amp,
        fp32_layers=tuple(kept),
        steps_per_epoch=distributed.all_reduce_min(len(loader), dist),
        classes=len(splits.classes),  # the divergence rule's ln k
        out=request.out,
        checkpoint_seconds=request.checkpoint_seconds,
    )


def _fp32_note(kept: tuple[str, ...]) -> list[str]:
    """What the run computed in fp32 within bf16, and why (one note, or none)."""
    if not kept:
        return []
    shown = ", ".join(kept[:4]) + (f" and {len(kept) - 4} more" if len(kept) > 4 else "")
    return [
        f"{len(kept)} convolution{'s' if len(kept) > 1 else ''} ({shown}) computed in fp32 "
        f"within bf16: {'their' if len(kept) > 1 else 'its'} bf16 kernels are slower on this "
        "CPU (config.json: fp32_layers)"
    ]


def _kept_fp32(model, amp, device: torch.device, request: Request) -> list[str]:
    """Layers computed in fp32 under bf16 autocast on the CPU (fp32_layers.py): a new run
    picks them from the model; a resume takes config.json's, so the arithmetic stays the
    run's (none for a run recorded before the rule). Every rank decides alike."""
    if amp is None or device.type != "cpu":
        return []
    if request.resume:
        return list(read_config(request.out).get("fp32_layers", []))
    return fp32_layers.fp32_layers(model)


# --- the loop ------------------------------------------------------------------------------


def _run_epochs(parts: Parts, position: Position, request: Request) -> list[str]:
    """Epochs from `position` on: steps, then the epoch's row, checkpoint and callback.
    Only the main rank reports (progress bar, on_epoch). Returns what the steps noted."""
    config, main, said = parts.config, parts.dist.is_main, []
    bar = _Bar(request.progress if main else None, parts, position)
    on_epoch = request.on_epoch if main else None
    start_wall = time.perf_counter() - position.wall
    last_save = time.monotonic()
    with guard.StopFlag() as stop:
        for epoch in range(position.epoch, config.epochs):
            parts.loader.set_epoch(epoch, position.step)
            parts.model.train()
            sums, tick = position.sums, time.perf_counter()
            for step, (x, y) in zip(
                range(position.step, parts.steps_per_epoch), parts.loader, strict=False
            ):
                due = (
                    parts.run is not None
                    and time.monotonic() - last_save >= parts.checkpoint_seconds
                )
                stopping, saving, noted = _step(parts, position, x, y, epoch, step, stop, due)
                said += noted
                position.step = step + 1
                bar.advance(epoch, sums, time.perf_counter() - tick)
                if stopping or saving:
                    sums.seconds += time.perf_counter() - tick
                    position.wall = time.perf_counter() - start_wall
                    checkpointing.save(parts, position)
                    last_save = time.monotonic()
                    tick = time.perf_counter()  # an epoch's seconds are its steps', not writes'
                if stopping:
                    raise TrainingInterrupted(_interrupted(parts, epoch, step))
            sums.seconds += time.perf_counter() - tick
            row = measure.epoch_row(parts, epoch, sums)
            row["wall"] = round(time.perf_counter() - start_wall, 3)
            position.rows.append(row)
            position.epoch, position.step, position.sums = epoch + 1, 0, Sums()
            position.wall = row["wall"]
            checkpointing.save(parts, position)
            last_save = time.monotonic()
            with distributed.together(parts.dist):  # the callback runs on rank 0 alone
                if on_epoch is not None:
                    on_epoch(row, config.epochs)
            # a signal during the epoch's validation: its checkpoint is saved; after the last
            # epoch the loop has no step left to see the flag, and Ctrl-C went unanswered
            if distributed.any_rank(stop.set, parts.dist):
                raise TrainingInterrupted(_interrupted(parts, epoch, None))
    return said


def _step(parts: Parts, position: Position, x, y, epoch, step, stop, due):
    """One optimizer step on batch (x (B, C, H, W), y (B,)) -> (stop, save) as all ranks
    agreed, and notes (the first step's logits read by `guard.output_notes`); the loss
    and accuracy sums of `position` grow by this batch."""
    config = parts.config
    global_step = epoch * parts.steps_per_epoch + step
    lr = learning_rate(config, global_step, parts.total_steps)
    for group in parts.optimizer.param_groups:
        group["lr"] = lr
    failure, loss_value, noted = None, math.nan, []
    amp = parts.amp or torch.float32
    try:  # a forward failing on one rank is said in the flags below, not left to a timeout
        with torch.autocast(x.device.type, dtype=amp, enabled=bool(parts.amp)):
            logits = parts.net(x)  # (B, classes)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        loss_value = loss.item()
        noted = guard.output_notes(logits, parts.amp) if global_step == 0 else []
    except BaseException as error:
        failure = error
    if position.first_loss is None and failure is None:
        position.first_loss = loss_value
    limit = guard.loss_limit(position.first_loss or 0.0, parts.classes)
    # one all-reduce for the decisions every rank must take alike
    failed, bad, stop, due = distributed.step_flags(
        [failure is not None, guard.is_diverged(loss_value, limit), stop.set, due], parts.dist
    )
    if failed:
        distributed.settle(failure, parts.dist)  # its own error here, RankLost on the others
    if bad:  # before the step: the weights and the last checkpoint stay as they were
        where = f"epoch {epoch + 1}, step {step + 1}"
        kept = guard.kept_checkpoint(parts.out, *parts.saved)
        first = global_step == 0
        raise guard.diverged_error(loss_value, limit, where, lr, config.lr, kept, first)
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts.optimizer.step()
    if parts.ema is not None:
        parts.ema.update(parts.model, global_step)
    position.sums.loss += loss_value * len(y)
    position.sums.correct += int((logits.argmax(1) == y).sum())
    position.sums.seen += len(y)
    return stop, due, noted


def _interrupted(parts: Parts, epoch: int, step: int | None) -> str:
    saved = f"checkpoint saved in {parts.out}: continue with --resume" if parts.out else None
    saved = saved or "nothing saved (no run directory)"
    where = (
        f"epoch {epoch + 1}, step {step + 1}"
        if step is not None
        else f"the end of epoch {epoch + 1}"
    )
    return f"interrupted at {where}; {saved}"


class _Bar:
    """The rich progress bar's task, or nothing."""

    def __init__(self, progress, parts: Parts, position: Position) -> None:
        self.progress, self.parts, self.task = progress, parts, None
        if progress is not None:
            done = position.epoch * parts.steps_per_epoch + position.step
            self.task = progress.add_task(
                "training",
                total=parts.total_steps,
                completed=done,
                loss=float("nan"),
                acc=0.0,
                ips=0.0,
            )

    def advance(self, epoch: int, sums: Sums, elapsed: float) -> None:
        if self.task is None:
            return
        self.progress.update(
            self.task,
            advance=1,
            description=f"epoch {epoch + 1}/{self.parts.config.epochs}",
            loss=sums.loss / sums.seen,
            acc=sums.correct / sums.seen,
            ips=sums.seen * self.parts.dist.world_size / max(sums.seconds + elapsed, 1e-9),
        )
