"""What stops a training run early: a diverging loss, Ctrl-C or SIGTERM, a failed write;
and what each stop says it left on disk and how to go on (`kept_checkpoint`, `way_on`,
`stopped`). And what the first batch's outputs say of a run that goes on but cannot learn
well: probabilities where cross-entropy wants logits (`probability_note`).

Both are decided between optimizer steps, so a checkpoint never holds a half-updated
optimizer, and under DDP every rank decides the same (`distributed.step_flags`).
"""

from __future__ import annotations

import errno
import math
import re
import signal
import threading
from pathlib import Path

import torch

from cnnlab.design.summary.lint_output import probability_ceiling, softmax_ceiling
from cnnlab.errors import RunError, TrainingDiverged
from cnnlab.train import checkpoint
from cnnlab.train.run_files import CONFIG

# A loss this many times above max(first loss, ln classes) has left any sane trajectory:
# ln k is the loss of a uniform guess, so a model that starts already trained still gets room
# for noisy batches. `--lr 100` on digits passes 20x within a few steps (and reaches 1e16
# unchecked); the recipes here never rise above 1.2x their first loss.
DIVERGE_FACTOR = 20.0


def loss_limit(first_loss: float, classes: int) -> float:
    """The loss above which training counts as diverged: F · max(first loss, ln k)."""
    return DIVERGE_FACTOR * max(first_loss, math.log(max(classes, 2)))


def is_diverged(loss: float, limit: float) -> bool:
    """True for a NaN/inf loss or one above `limit` (see `loss_limit`)."""
    return not math.isfinite(loss) or loss > limit


def diverged_error(
    loss: float,
    limit: float,
    where: str,
    lr: float,
    peak_lr: float,
    kept: str,
    first_step: bool = False,
) -> TrainingDiverged:
    """Why training stopped and which knob to turn. The advice is to start again: --resume
    refuses other options, and with the same ones replays the same steps into the same loss.
    The suggested rate is a tenth of the rate the loss ran away at (still warming up, that
    may be well below the peak), not of the peak. first_step: the loss of the run's first
    batch, before any update, so no learning rate made it: the model's own weights or forward
    did (a model from code whose forward makes NaN was told to lower the rate)."""
    if first_step and not math.isfinite(loss):
        return TrainingDiverged(
            f"the training loss was {loss} on the first batch ({where}), before any update, so "
            "not through the learning rate: the model gives non-finite logits at its initial "
            "weights; check its initialisation and forward (a log or sqrt of a negative, a "
            f"division by zero; in bf16, try --precision fp32); {kept}"
        )
    what = (
        f"the training loss became {loss}"
        if not math.isfinite(loss)
        else f"the training loss climbed to {loss:.3g}, over {limit:.3g} ({DIVERGE_FACTOR:g}x "
        "where it started)"
    )
    safer = min(lr, peak_lr) / 10
    return TrainingDiverged(
        f"{what} at {where} (lr {lr:.3g}): the learning rate is probably too high; start "
        f"again with --force --lr {safer:.3g} (or --force and a longer --warmup); {kept}"
    )


def saved_at(epoch: int, step: int) -> str:
    """A checkpoint's position as checkpoint.json records it (epochs done, steps done in the
    next one), and where that is in the 1-based terms of the epoch lines and of 'interrupted
    at epoch 2, step 6' when it lies within an epoch: 'epoch 1, step 6' alone read as step 6
    of epoch 1."""
    within = f": {step} step{'s' * (step != 1)} into epoch {epoch + 1}" if step else ""
    return f"epoch {epoch}, step {step}{within}"


def kept_checkpoint(out: Path | None, epoch: int, step: int) -> str:
    """What a stopped run leaves behind, for the end of a message."""
    if out is None:
        return "nothing was written (no run directory)"
    if epoch or step:
        return f"the last checkpoint ({saved_at(epoch, step)}) is kept in {out}"
    return "no checkpoint was written yet"


class StopFlag:
    """SIGINT (Ctrl-C) and SIGTERM (kill, a scheduler's stop) set a flag the loop checks
    between steps; the loop then saves a checkpoint and stops. A second signal interrupts at
    once. Handlers are installed only on the main thread, and restored on exit.
    A signal ignored when training begins stays ignored, as Python keeps a SIGINT the process
    was started with ignored (a background job of a script, `cnnlab train ... &`, is meant to
    outlive the Ctrl-C that stops the script): start-up and training then agree, and SIGTERM
    still stops the run with a checkpoint."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.set = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def way_on(error: RunError, out: Path, saving: tuple[int, int] | None = None) -> RunError:
    """A write that failed (a full disk, a read-only mount), with how to go on from what is
    on disk. The checkpoint's tensor file is its commit: a failure on a file written after
    it (checkpoint.json, metrics.jsonl, model.safetensors) leaves that checkpoint,
    `saving`'s position, whole, and --resume continues from it (or, from the last, writes
    the rest)."""
    fix = write_fix(error.__cause__, out)
    on_disk = checkpoint.saved_position(out)
    if on_disk is None:
        again = "start again with --force" if (out / CONFIG).is_file() else "run it again"
        hint = f"no checkpoint was saved yet: {fix} and {again}"
    else:
        which = "the new checkpoint" if on_disk == saving else "the previous checkpoint"
        hint = f"{which} ({saved_at(*on_disk)}) is whole on disk: {fix} and continue with --resume"
    return RunError(f"{error}; {hint}")


def write_fix(cause: BaseException | None, out: Path) -> str:
    """What makes the run directory writable again, by the errno of the failed write: a
    full disk or quota needs space, a read-only mount or lost permission needs `out` made
    writable (freeing space would not help), anything else its own cause fixed."""
    number = getattr(cause, "errno", None)
    if number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"make {out} writable again (its permissions, or a read-only mount)"
    if number in (errno.ENOSPC, errno.EDQUOT) or number is None:
        return "free some space"  # no errno known: a full disk is the likeliest
    return f"fix what stopped the write to {out}"


def stopped(out: Path | None) -> str:
    """A Ctrl-C (or SIGTERM) where the loop does not wait for one (a second signal, the
    final test evaluation): what the disk holds and how to go on."""
    if out is None:
        return "interrupted; nothing saved (no run directory)"
    on_disk = checkpoint.saved_position(out)
    if on_disk is None:
        return f"interrupted before the first checkpoint; start again with --force --out {out}"
    return (
        f"interrupted; the last checkpoint ({saved_at(*on_disk)}) is kept in {out}: "
        "continue with --resume"
    )


# Autograd nodes that only move, reshape, copy or cast an output (a `.view`, nn.Flatten, a
# bf16 autocast's `.to`, DDP's pass-through): the op that made the outputs lies behind them.
_PASS_THROUGH = {
    "View", "UnsafeView", "ReshapeAlias", "Squeeze", "Unsqueeze", "ToCopy", "Clone", "Alias",
    "Expand", "DDPSink",
}  # fmt: skip
_FINAL_OPS = {"Softmax": "softmax", "Sigmoid": "sigmoid", "Tanh": "tanh"}
# Rows of a batch that must each sum to 1 before probabilities are told from values alone
# (the op hidden: a compiled model, a softmax written as exp/sum). Over 4,500 random
# non-negative heads (ReLU or Softplus ends, SqueezeNet-style ReLU + GAP, 2 to 10 classes),
# at bf16's tolerance 33 had one row summing to 1, 3 had both of 2 rows, none all of 8.
MIN_ROWS = 8


def final_op(logits: torch.Tensor) -> str | None:
    """'softmax', 'sigmoid' or 'tanh' when the autograd node that made `logits` is one of them,
    behind nodes that only reshape or cast (`_PASS_THROUGH`); else None (another op, or none
    recorded: no gradients, a compiled model's one node)."""
    node = logits.grad_fn
    for _ in range(16):
        if node is None:
            return None
        name = re.sub(r"Backward\d*$", "", type(node).__name__).removeprefix("_")
        if name in _FINAL_OPS:
            return _FINAL_OPS[name]
        if name not in _PASS_THROUGH:
            return None
        node = next((n for n, _ in node.next_functions if n is not None), None)
    return None


def sum_tolerance(dtype: torch.dtype) -> float:
    """How far from 1 a row of probabilities computed in `dtype` may sum: 2ε + 1e-5, ε the
    dtype's machine epsilon (bf16 2⁻⁷: 0.0156; measured at most 0.0028 over 10 to 1,000
    classes), 1e-5 for the float32 sum of up to thousands of classes."""
    return 2 * torch.finfo(dtype).eps + 1e-5


def is_softmax_output(out: torch.Tensor, dtype: torch.dtype) -> bool:
    """Every row of `out` (B, K) is ≥ 0 and sums to 1 within `sum_tolerance(dtype)`."""
    rows = out.sum(1)
    return bool((out >= 0).all()) and bool(((rows - 1).abs() <= sum_tolerance(dtype)).all())


def loss_floor(classes: int) -> float:
    """The least cross-entropy of outputs confined to [0, 1], as probabilities are: −ln of
    the highest probability their softmax gives a class, e/(e + K − 1)
    (`lints.probability_ceiling`, the summary's bound too), is ln(1 + (K − 1)/e) for every
    class (label smoothing's terms included)."""
    return -math.log(probability_ceiling(classes))


PROBABILITIES = "the model's outputs on the first batch are probabilities"  # its note's start
BOUNDED = "the model's outputs come from a final tanh"  # its note's start


def tanh_ceiling(classes: int) -> float:
    """The highest probability softmax gives any class when its inputs lie in [−1, 1], as a
    tanh's do: a gap of at most 2 between them caps it at e²/(e² + K − 1); the loss, −ln of
    that, is at least ln(1 + (K − 1)/e²) (`lint_output.softmax_ceiling`, the summary's
    bounded-scores bound too)."""
    return softmax_ceiling(classes, 2.0)


def tanh_note(logits: torch.Tensor) -> list[str]:
    """A note when the first batch's outputs (B, K) were made by a tanh (its autograd node,
    `final_op`) and lie in [−1, 1]: logits that can never be far apart (MONAI's ViT ends its
    classification head in one, `post_activation="Tanh"`)."""
    if logits.dim() != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        return []
    out = logits.detach().float()
    if final_op(logits) != "tanh" or not bool(((out >= -1) & (out <= 1)).all()):
        return []
    k, top = out.shape[1], tanh_ceiling(out.shape[1])
    return [
        f"{BOUNDED}, so they lie between -1 and 1: softmax gives no class more than "
        f"e²/(e² + {k - 1}) = {top:.1%} with {k} classes, the cross-entropy cannot fall below "
        f"{-math.log(top):.3f}, and eval's and predict's probabilities never pass {top:.1%}. "
        "Return the logits before the tanh (MONAI's ViT: post_activation=None)"
    ]


def probability_note(logits: torch.Tensor, precision: torch.dtype | None = None) -> list[str]:
    """A note when the first batch's outputs (B, K) are already probabilities: every row
    ≥ 0 summing to 1 made by a softmax (or, the op hidden, on at least `MIN_ROWS` rows), or
    values in [0, 1] made by a sigmoid. Values alone do not tell a sigmoid: random-init
    logits all within (0, 1), on both sides of 0.5, are common (a 2-class GAP head: 24 of 300
    seeds; a SqueezeNet ReLU + GAP head of 10 classes: 47 of 300), so a sigmoid is told by its
    autograd node.
    Log-probabilities (log_softmax, ≤ 0) are no matter: their cross-entropy is the logits'.
    precision: the autocast dtype of the forward (None: the outputs' own)."""
    if logits.dim() != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        return []
    out = logits.detach().float()
    op = final_op(logits)
    if op == "sigmoid" and bool(((out >= 0) & (out <= 1)).all()):
        made = "every value lies between 0 and 1, as a final sigmoid makes them"
    elif is_softmax_output(out, precision or logits.dtype) and (
        op == "softmax" or len(out) >= MIN_ROWS
    ):
        op = "softmax"
        made = "every row is ≥ 0 and sums to 1, as a final softmax makes them"
    else:
        return []
    k = out.shape[1]
    low, high = out.aminmax()
    return [
        f"{PROBABILITIES}, not logits: {made} "
        f"(values {float(low):.3g} to {float(high):.3g}). Cross-entropy applies log-softmax "
        f"itself, so they pass through a second softmax: with {k} classes the loss cannot "
        f"fall below ln(1 + {k - 1}/e) = {loss_floor(k):.3f}, the gradients shrink and "
        "training crawls. "
        f"Remove the final {op} and return the logits; apply softmax when predicting "
        "(cnnlab's predict and eval do)"
    ]


def output_notes(logits: torch.Tensor, precision: torch.dtype | None = None) -> list[str]:
    """The notes on the first batch's outputs: probabilities given for logits
    (`probability_note`), logits bounded by a final tanh (`tanh_note`)."""
    return probability_note(logits, precision) + tanh_note(logits)
