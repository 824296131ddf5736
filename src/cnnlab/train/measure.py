"""What a run measures: each epoch's metrics.jsonl row and, at the end, the test accuracy.

An epoch's row holds the training sums all-reduced over ranks, the validation loss and
accuracy of the evaluated weights (the EMA's, with BatchNorm statistics recomputed for them,
norm_stats.py) and, when asked, diagnostics. `finish` evaluates the test split with and
without flip TTA (reporting only) and writes model.safetensors and metrics.jsonl;
what one rank computes or writes on its own ends in `distributed.together`, so a failure
there reaches the other ranks at once instead of after CNNLAB_DDP_TIMEOUT;
`guess_note` says when that accuracy is not told apart from guessing one class, and
`few_steps_note` when the run took too few optimizer steps to learn.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cnnlab.data import ImageSet, to_float
from cnnlab.errors import RunError
from cnnlab.inspect.preserve import eager_stance, plain_name
from cnnlab.train import distributed, guard, norm_stats
from cnnlab.train.config import TrainConfig, learning_rate
from cnnlab.train.evaluate import evaluate_tensors
from cnnlab.train.rundir import images_per_second
from cnnlab.train.state import Parts, Splits, Sums


def epoch_row(parts: Parts, epoch: int, sums: Sums) -> dict:
    """One metrics.jsonl row: training sums all-reduced over ranks, validation on the EMA,
    lr of the epoch's last step."""
    dist, config = parts.dist, parts.config
    lr = learning_rate(config, (epoch + 1) * parts.steps_per_epoch - 1, parts.total_steps)
    distributed.broadcast_buffers(parts.model, dist)
    with distributed.together(dist):
        if parts.ema is not None:
            parts.ema.copy_buffers(parts.model)
        # the EMA's weights with the live model's averages read near chance early on: every
        # validation row, and what is saved, gets statistics of its own weights (norm_stats)
        if config.bn_recalibrate and (epoch + 1 == config.epochs or parts.val is not None):
            norm_stats.from_loader(parts.evaluated, parts.loader, config.bn_recalibrate, parts.amp)
    loss, correct, seen, seconds = distributed.all_reduce_sum(sums.to_list(), dist)
    seconds /= dist.world_size
    row = {
        "epoch": epoch + 1,
        "train_loss": loss / seen,
        "train_acc": correct / seen,
        "lr": lr,
        "seconds": round(seconds, 3),
        "img_per_s": round(seen / max(seconds, 1e-9), 1),
    }
    if parts.val is not None:
        v_loss, v_correct, v_n = sharded_eval(parts, parts.evaluated, *parts.val, tta=False)
        row["val_loss"], row["val_acc"] = v_loss / v_n, v_correct / v_n
    if config.diagnose_every and (epoch + 1) % config.diagnose_every == 0:
        with distributed.together(dist):
            row["diagnose"] = _diagnose(parts.model, parts.loader, epoch)
    parts.model.train()
    return row


def sharded_eval(parts: Parts, model, images, labels, tta: bool) -> tuple[float, float, int]:
    """(loss sum, correct, count) over all ranks, each rank evaluating every world_size-th."""
    dist, config = parts.dist, parts.config
    mine = slice(dist.rank, None, dist.world_size)
    with distributed.together(dist):  # one rank's shard failing stops the others at once
        sums = evaluate_tensors(
            model,
            images[mine],
            labels[mine],
            batch_size=config.eval_batch_size,
            tta=tta,
            autocast=parts.amp,
            channels_last=config.channels_last,
            tta_shift=config.tta_shift if tta else 0,
            tta_flip=config.flip is not False,
        )
    loss_sum, correct, n = distributed.all_reduce_sum(list(sums), dist)
    return loss_sum, correct, int(n)


def _diagnose(model: nn.Module, loader, epoch: int) -> dict:
    """Per-epoch diagnostics on the first training batch, RNG state left untouched."""
    from cnnlab.diagnose import epoch_diagnostics  # a peer of train, needed only when asked

    rng = torch.get_rng_state()
    loader.set_epoch(epoch)
    x, y = next(iter(loader))
    try:
        with eager_stance():  # hooks in compiled code: graph breaks and recompiles mid-run
            found = epoch_diagnostics(model, x, y)
    finally:
        torch.set_rng_state(rng)
        model.train()
    return {k: _plain_keys(v) if isinstance(v, dict) else v for k, v in found.items()}


def _plain_keys(per_layer: dict) -> dict:
    """Layers named as every command that opens the run names them: a compiled child's
    `features._orig_mod.0` is `features.0` there (`inspect.preserve.decompiled`)."""
    named: dict = {}
    for name, value in per_layer.items():
        named.setdefault(plain_name(name), value)
    return named


def finish(parts: Parts, rows: list[dict], splits: Splits) -> dict:
    """Test accuracy with and without flip TTA (reporting only), model.safetensors; a
    failed write of it or metrics.jsonl says its way on (`guard.way_on`)."""
    result: dict[str, Any] = {"out": parts.out and str(parts.out), "epochs": len(rows)}
    model = parts.evaluated
    model.eval()
    if rows:
        last = rows[-1]
        result.update({k: last[k] for k in ("train_loss", "train_acc") if k in last})
        result.update({k: last[k] for k in ("val_loss", "val_acc") if k in last})
        result["train_seconds"] = round(sum(r["seconds"] for r in rows), 3)
        result["wall_seconds"] = last.get("wall")
        result["img_per_s"] = round(images_per_second(rows), 1)
    test = splits.test
    if test is not None:
        x = to_float(test.images, splits.mean, splits.std).to(parts.dist.device)
        y = test.labels.to(parts.dist.device)
        loss, correct, n = sharded_eval(parts, model, x, y, tta=False)
        result["test_loss"], result["test_acc"] = loss / n, correct / n
        if parts.config.tta:
            _, correct, n = sharded_eval(parts, model, x, y, tta=True)
            result["test_acc_tta"] = correct / n
    if rows:
        rows[-1].update({k: v for k, v in result.items() if k.startswith("test_")})
    with distributed.together(parts.dist):  # rank 0 writes: a failure reaches all at once
        if parts.run is not None:
            _write(parts, model, rows)
    return result


def _write(parts: Parts, model: nn.Module, rows: list[dict]) -> None:
    """model.safetensors and metrics.jsonl; a failed write says how to go on (`way_on`)."""
    try:
        parts.run.save_weights(model.state_dict())
        parts.run.write_metrics(rows)
    except RunError as error:
        raise guard.way_on(error, parts.out) from error


GUESS_TAIL = 0.00135  # a guesser's chance of scoring above `guess_bound`: a normal's 3σ tail


def guesses(test_acc: float | None, test: ImageSet | None) -> bool:
    """Whether `test_acc` on `test` is not told apart from always guessing its most frequent
    class, where the test set can tell: the accuracy at most `guess_bound` of that class's
    share, and the bound below halfway from the share to 100 % (a handful of test images, or
    one class of 90 %, cannot tell a guesser from a good model). No test split: False."""
    if test_acc is None or test is None or len(test) == 0 or len(test.classes) < 2:
        return False
    share = max(test.class_counts()) / len(test)
    bound = guess_bound(share, len(test))
    return test_acc <= bound and bound < (1 + share) / 2


def guess_bound(share: float, n: int, tail: float = GUESS_TAIL) -> float:
    """The accuracy a guesser right on a fraction `share` of images scores on n of them by
    chance: the smallest k/n with P(X > k) ≤ tail, X ~ Binomial(n, share) (each image right
    with probability `share`); `tail` 0.00135 is a normal's 3σ. Exact for a few images, where
    share + 3·sqrt(share·(1 − share)/n) is not (its tail is not a normal's)."""
    if share >= 1:
        return 1.0
    k = torch.arange(n + 1, dtype=torch.float64)
    log_pmf = torch.distributions.Binomial(n, probs=torch.tensor(share, dtype=torch.float64))
    above = 1 - torch.cumsum(log_pmf.log_prob(k).exp(), 0)  # P(X > k)
    return int(torch.nonzero(above <= tail)[0]) / n if bool((above <= tail).any()) else 1.0


FEW_STEPS = 50  # optimizer steps in a run below which `few_steps_note` speaks
FEW_STEPS_START = "this run took only"  # its note's start, read by guess_note


def few_steps_note(n_train: int, config: TrainConfig, steps_per_epoch: int) -> list[str]:
    """A note when the whole run takes fewer than FEW_STEPS optimizer steps: a model from
    scratch may need more updates than that to leave its initial weights, and no lr makes up
    for them (300 photos of 3 classes at the default batch 128: 2 steps an epoch, 16 in 8
    epochs, 45 % on the test images; --batch-size 32, 7 steps an epoch, 56: 100 %; easy
    data, such as `shapes`, learns in 8). More steps: a smaller batch (the first of 64, 32,
    16, 8 that gives FEW_STEPS), more epochs, or both."""
    epochs, steps = config.epochs, steps_per_epoch * config.epochs
    if steps >= FEW_STEPS:
        return []
    smaller = [b for b in (64, 32, 16, 8) if b < config.batch_size]
    enough = [b for b in smaller if n_train // b * epochs >= FEW_STEPS]
    if enough:
        fix = f"--batch-size {enough[0]} gives {n_train // enough[0] * epochs}, more --epochs more"
    else:
        b = smaller[-1] if smaller else config.batch_size
        more = math.ceil(FEW_STEPS / max(1, n_train // b))
        size = f"--batch-size {b} and " if b != config.batch_size else ""
        fix = f"{size}--epochs {more} give {n_train // b * more}"
    return [
        f"{FEW_STEPS_START} {steps} optimizer step{'s' * (steps != 1)} ({steps_per_epoch} an "
        f"epoch: {n_train} training images in batches of {config.batch_size}, {epochs} "
        f"epoch{'s' * (epochs != 1)}); if its accuracy is low, more steps may help where "
        f"another --lr does not: {fix}"
    ]


def guess_note(
    test_acc: float | None, test: ImageSet | None, config: TrainConfig, notes: list[str] = ()
) -> list[str]:
    """A run not told apart from always guessing one class (a recipe that never started
    learning: an lr too high or too low for the model, an AdamW model trained with SGD, too
    few steps) is said, with what to try, where the test set can tell (`guesses`). A model
    whose outputs are probabilities (guard.probability_note among the run's `notes`) crawls
    whatever the lr: the fix is its final layer, so the note points there, not to --lr; a
    run of few steps (`few_steps_note` among them) is pointed to more steps first."""
    if not guesses(test_acc, test):
        return []
    share = max(test.class_counts()) / len(test)
    bound = guess_bound(share, len(test))
    said = (
        f"test accuracy {test_acc:.2%} is not told apart from always guessing the most "
        f"frequent class ({share:.2%} of the test images), which scores up to {bound:.2%} on "
        f"{len(test)} images by chance"
    )
    if any(note.startswith(guard.PROBABILITIES) for note in notes):
        return [
            f"{said}; the model has not learned, and its outputs are probabilities (see the "
            "note on them): return the logits first; another --lr does not undo the second "
            "softmax"
        ]
    adamw = "" if config.optimizer == "adamw" else ", --optimizer adamw --lr 3e-3"
    # off, a BatchNorm net is evaluated with running averages of earlier weights' statistics
    # (12.8 % on digits after 2 epochs, 95.0 % recomputed): that, not the lr, is then first
    if any(note.startswith(FEW_STEPS_START) for note in notes):
        try_first = "It took few steps (see the note on them): try more, or"
    elif config.bn_recalibrate == 0:
        try_first = "Turn --bn-recalibrate back on (0 here) if the model has BatchNorm, or try"
    else:
        try_first = "Try"
    return [
        f"{said}; the model may not have learned. {try_first} another --lr (this run's "
        f"{config.lr:g}: too high and too low both stall){adamw}, or more --epochs; "
        "`cnnlab diagnose RUN` looks for dead units and vanishing gradients"
    ]
