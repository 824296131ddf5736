"""Every training knob in one place, each with its default and the reason for it.

As airbench's hyperparameter dictionary: one dataclass, one line of help per knob (the CLI's
`--help` text comes from the same `help=`, so the options cannot drift from the fields), and
the measured effect where a knob was measured. Defaults are the recipe of the `fast` preset on
Fashion-MNIST (BENCHMARKS.md, "training", has its time to 93 % / 94 % and the spread).

Why the learning rate is a peak: the schedule (`learning_rate`) is a pure function of the step,
lr/10 -> lr over the warm-up, then linearly to 0 (airbench's triangle), so a resumed run needs
no scheduler state. Why weight decay skips norms and biases: decaying a BatchNorm scale only
fights the normalization that follows it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cnnlab.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where it is used: `cnnlab train --help` reads the
    import torch  # options from TrainConfig, without torch's seconds of import
    from torch import nn

OPTIMIZERS = ("sgd-nesterov", "adamw")
SCHEDULES = ("onecycle", "cosine")
PRECISIONS = ("auto", "bf16", "fp32")
MAX_SEED = 2**63 - 1  # torch.manual_seed takes a signed 64-bit integer


class FieldError(ConfigError):
    """A TrainConfig field's value refused: `field` names it and `problem` says what is wrong
    ("must be a finite number, got inf"). The message names the field, as a Python caller
    wrote it; `cnnlab train` names the option the user typed instead (--weight-decay)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem

    def __reduce__(self) -> tuple:
        return type(self), (self.field, self.problem)


def knob(default: Any, help: str) -> Any:  # noqa: A002 - argparse's word for it
    """A TrainConfig field with its help text (the reason for the default) attached."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Every training knob, with the default the `fast` preset is tuned for."""

    epochs: int = knob(8, "passes over the training split")
    batch_size: int = knob(
        128,
        "global batch, split between torchrun ranks; against 256: twice the steps at about "
        "the same img/s, +0.65 %% val acc after 6 epochs, +0.07 %% after 8",
    )
    optimizer: str = knob("sgd-nesterov", "sgd-nesterov | adamw")
    lr: float = knob(0.1, "peak learning rate of the schedule (AdamW: try 3e-3)")
    momentum: float = knob(0.9, "SGD momentum; AdamW's beta1")
    weight_decay: float = knob(
        5e-4,
        "on conv/linear weights only (decaying BN scales and biases only fights the "
        "normalization); AdamW: decoupled, try 0.05",
    )
    schedule: str = knob(
        "onecycle",
        "onecycle: lr/10 -> lr over the warm-up, then linearly to 0 (airbench's triangle); "
        "cosine: 0 -> lr, then a half cosine to 0",
    )
    warmup: float = knob(0.2, "fraction of all steps spent warming up")
    label_smoothing: float = knob(
        0.1, "soft targets: calmer logits (from the orientation recipe; not ablated here)"
    )
    translate: int = knob(2, "random shift by pad-and-crop, pixels (0: off)")
    flip: bool | None = knob(
        None,
        "random horizontal flips, also in test-time augmentation; default: on, except for data "
        "sets whose classes a mirror changes (digits)",
    )
    erase: float = knob(0.0, "probability of random erasing per image (0: off)")
    ema: float | None = knob(
        0.99,
        "weight EMA decay per step, or 'none'; the EMA weights are evaluated and saved "
        "(smooths the last noisy steps; not ablated here)",
    )
    bn_recalibrate: int = knob(
        4096,
        "after the last epoch and after every epoch that is validated, recompute BatchNorm's "
        "running statistics for the evaluated weights over this many training images (0: "
        "keep the running averages); a 2-epoch "
        "digits run: 12.8 %% test acc with the averages, 95.0 %% recomputed; a BatchNorm "
        "meant to stay frozen (fine-tuning) is recomputed too: pass 0",
    )
    tta: bool = knob(
        True,
        "evaluate on the image and its mirror image, averaging the logits: +0.12 to "
        "+0.24 %% test acc in 4 runs of 8 epochs (reported, not tuned on)",
    )
    tta_shift: int = knob(
        0,
        "with tta, also average the views moved N px up/down/left/right (10 views, 5x the "
        "evaluation): +0.12 to +0.3 %% val acc for 3 models of 14-17 epochs",
    )
    precision: str = knob(
        "auto",
        "auto: bf16 autocast where the hardware has bf16 math, else fp32; bf16 | fp32 to "
        "force. bf16: 861 vs 513 img/s fp32 (1.7x) for `fast`, one AVX512-BF16 core; "
        "on the CPU, the convolutions whose oneDNN bf16 kernels are slower than fp32's "
        "(strided, dilated or larger depthwise, transposed grouped: 1.2-14x) compute in "
        "fp32 within it (train/fp32_layers.py; config.json's fp32_layers)",
    )
    channels_last: bool = knob(True, "NHWC memory layout: oneDNN's fast convolution path")
    compile: bool = knob(False, "torch.compile the model (compiles in the first steps)")
    val_fraction: float = knob(0.1, "held-out share of the training set, stratified, seeded")
    seed: int = knob(0, "seeds weights, split, order and augmentation")
    diagnose_every: int = knob(0, "store diagnose.epoch_diagnostics every N epochs (0: never)")
    eval_batch_size: int = knob(
        256,
        "batch size at evaluation: 0.94 s for 10k test images against 1.9 s at 1024 (bf16, "
        "channels-last, 2 cores: 256 stays in cache)",
    )

    def __post_init__(self) -> None:
        for name, allowed in (
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("precision", PRECISIONS),
        ):
            if getattr(self, name) not in allowed:
                raise FieldError(
                    name, f"{getattr(self, name)!r} is not one of {', '.join(allowed)}"
                )
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise FieldError(name, f"must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.seed <= MAX_SEED:
            raise FieldError("seed", f"must be in 0..{MAX_SEED} (2^63 - 1), got {self.seed}")
        if not self.lr > 0:
            raise FieldError("lr", f"must be a positive number, got {self.lr}")
        if self.bn_recalibrate == 1:  # one image: a BatchNorm on (N, C) or 1×1 maps raises
            raise FieldError("bn_recalibrate", "1: BatchNorm statistics need 2 images or more")
        for name, (ok, allowed) in {
            "weight_decay": (self.weight_decay >= 0, ">= 0"),
            "momentum": (0 <= self.momentum < 1, "in [0, 1)"),
            "warmup": (0 <= self.warmup < 1, "a fraction in [0, 1)"),
            "label_smoothing": (0 <= self.label_smoothing < 1, "in [0, 1)"),
            "translate": (self.translate >= 0, ">= 0 (pixels)"),
            "tta_shift": (self.tta_shift >= 0, ">= 0 (pixels)"),
            "erase": (0 <= self.erase <= 1, "a probability in [0, 1]"),
            "val_fraction": (0 <= self.val_fraction < 1, "in [0, 1)"),
            "diagnose_every": (self.diagnose_every >= 0, ">= 0 (epochs; 0: off)"),
            "bn_recalibrate": (self.bn_recalibrate >= 0, "0 (off) or >= 2 (images)"),
            "ema": (self.ema is None or 0 < self.ema < 1, "a decay in (0, 1), or none"),
        }.items():
            if not ok:
                raise FieldError(name, f"must be {allowed}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config stored in a run's config.json (other keys there are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _check_type(name: str, value: Any, kind: str) -> None:
    """ConfigError unless `value` fits the field's annotation (floats finite): a config.json
    edited by hand, or a Python caller, gets one line rather than a TypeError later."""
    if value is None and "None" in kind:
        return
    if kind.startswith("bool"):
        ok = isinstance(value, bool)
    elif kind.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind.startswith("float"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise FieldError(name, f"must be a finite number, got {value}")
    else:
        ok = isinstance(value, str)
    if not ok:
        raise FieldError(name, f"must be {kind.split(' |')[0]}, got {value!r}")


def help_text(name: str) -> str:
    """The help of TrainConfig's field `name` (argparse's %-format escapes kept)."""
    return next(f.metadata["help"] for f in dataclasses.fields(TrainConfig) if f.name == name)


# --- precision, schedule, optimizer: pure functions of the config -------------------------


def bf16_supported(device: torch.device | str = "cpu") -> bool:
    """True when bf16 autocast runs natively: CUDA with bf16, or a CPU whose oneDNN has bf16
    kernels (AVX512-BF16 / AMX; elsewhere bf16 is emulated and slower than fp32)."""
    import torch
    from torch import nn

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
    import torch

    if config.precision == "fp32":
        return None
    if config.precision == "bf16" or bf16_supported(device):
        return torch.bfloat16
    return None


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate at optimizer step `step` of `total_steps`, t = step / total:
    onecycle: lr·(0.1 + 0.9·t/w) for t < w, then lr·(1 − (t − w)/(1 − w));
    cosine: lr·t/w, then lr·½(1 + cos(π(t − w)/(1 − w))). A pure function of the step."""
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
    import torch

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999))
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
