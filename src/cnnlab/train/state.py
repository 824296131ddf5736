"""The named state of a training run, so the loop's helpers take one object, not ten.

`Request` (what the caller asked for), `Splits` (the data of the run), `Sums` (one epoch's
running sums on this rank), `Position` (where the run is: what a checkpoint stores besides
tensors and RNG states), `Parts` (the objects built once per run) and `EMA` (the weight
average evaluated and saved).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data import ImageSet, Loader
from cnnlab.inspect import reloaded
from cnnlab.train import distributed, fp32_layers
from cnnlab.train.config import TrainConfig
from cnnlab.train.rundir import RunDir


class EMA:
    """Exponential moving average of the weights: ema ← d·ema + (1−d)·w after every step.

    d = min(decay, (1 + t) / (10 + t)) at update t, so early averages do not cling to the
    random initialisation. Buffers (BatchNorm statistics) are copied, not averaged, as are
    parameters that are not floating point (an index or a mask kept as an integer or bool
    nn.Parameter with requires_grad=False): no step changes them, and torch has no lerp for
    them.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = model_copy(model).eval()
        for p in self.model.parameters():
            # detach_: a deep copy of a TorchScript block holds clones with autograd history,
            # whose requires_grad flag torch refuses to change
            p.detach_()

    @torch.no_grad()
    def update(self, model: nn.Module, t: int) -> None:
        d = min(self.decay, (1 + t) / (10 + t))
        pairs = list(zip(self.model.parameters(), model.parameters(), strict=True))
        floats = [(mine, p.detach()) for mine, p in pairs if mine.is_floating_point()]
        if floats:
            torch._foreach_lerp_(*map(list, zip(*floats, strict=True)), 1 - d)
        for mine, p in pairs:
            if not mine.is_floating_point():
                mine.copy_(p)
        self.copy_buffers(model)

    @property
    def evaluated(self) -> nn.Module:
        """The averaged model, ready to evaluate: its weights changed in place at every
        update, so what its modules cached from older ones in eval mode (LeViT's attention
        biases) is dropped here, read a few times an epoch, rather than at every update."""
        return reloaded(self.model)

    @torch.no_grad()
    def copy_buffers(self, model: nn.Module) -> None:
        for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)


def model_copy(model: nn.Module) -> nn.Module:
    """A deep copy of the user's model. A tensor its forward kept as an attribute (a side
    branch's output, `self.reconstruction = self.decoder(h)`) still carries autograd history
    after a forward with gradients, and deepcopy refuses such a tensor (a RuntimeError); the
    copy holds a detached clone of it instead."""
    memo: dict[int, Any] = {}
    for module in model.modules():
        for name, value in vars(module).items():
            if name not in ("_parameters", "_buffers", "_modules"):
                for t in _kept_tensors(value):
                    memo.setdefault(id(t), t.detach().clone())
    return copy.deepcopy(model, memo)


def _kept_tensors(value: Any, depth: int = 3) -> list[torch.Tensor]:
    """The non-leaf tensors in a module attribute: itself, or in its lists, tuples and dicts
    (a few levels: a forward keeps a list of feature maps, not a deep structure)."""
    if isinstance(value, torch.Tensor):
        return [] if value.is_leaf else [value]
    if depth == 0:
        return []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _kept_tensors(item, depth - 1)]
    return []


@dataclass(frozen=True)
class Request:
    """What the caller of `train` asked for, as given."""

    model_or_spec: Any
    data: Any
    out: Path | None
    config: TrainConfig | None
    resume: bool
    force: bool
    strict: bool
    progress: Any
    on_epoch: Callable[[dict[str, Any], int], None] | None
    checkpoint_seconds: float


@dataclass(frozen=True)
class Splits:
    """The data of a run: training and validation parts, test split, the training part's
    per-channel statistics, class names, the name config.json stores, and folder notes."""

    train: ImageSet
    val: ImageSet | None
    test: ImageSet | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    name: Any
    notes: dict[str, list[list[str]]]


@dataclass
class Sums:
    """One epoch's running training sums on this rank (checkpointed mid-epoch)."""

    loss: float = 0.0  # Σ batch loss · batch size
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0  # time spent in steps

    def to_list(self) -> list:
        return [self.loss, self.correct, self.seen, self.seconds]


@dataclass
class Position:
    """Where the run is: what a checkpoint stores besides tensors and RNG states."""

    epoch: int = 0  # epochs completed
    step: int = 0  # steps done in epoch `epoch` (> 0 after a mid-epoch checkpoint)
    sums: Sums = field(default_factory=Sums)
    wall: float = 0.0  # seconds since the run started, summed over its sessions
    first_loss: float | None = None  # the run's first loss, the divergence rule's anchor
    rows: list[dict] = field(default_factory=list)  # metrics.jsonl rows so far

    def to_state(self) -> dict:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "partial": self.sums.to_list(),
            "wall": self.wall,
            "first_loss": self.first_loss,
        }


@dataclass
class Parts:
    """The objects of one training run, built once (so helpers take one argument, not ten)."""

    config: TrainConfig
    dist: distributed.Dist
    run: RunDir | None  # None: out=None, or a rank other than 0
    model: nn.Module
    net: nn.Module  # the model as stepped: DDP-wrapped and/or compiled
    ema: EMA | None
    optimizer: torch.optim.Optimizer
    loader: Loader
    val: tuple[torch.Tensor, torch.Tensor] | None  # normalized images, labels
    amp: torch.dtype | None
    fp32_layers: tuple[str, ...]  # layers computed in fp32 under bf16 autocast
    steps_per_epoch: int
    classes: int
    out: Path | None
    checkpoint_seconds: float
    saved: tuple[int, int] = (0, 0)  # (epoch, step) of the last checkpoint saved or resumed

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    @property
    def evaluated(self) -> nn.Module:
        """The weights that are evaluated and saved: the EMA's when EMA is on."""
        return self.ema.evaluated if self.ema is not None else self.model

    @torch.no_grad()
    def handed_back(self) -> nn.Module:
        """The module that was trained (the caller's own, for an nn.Module) holding the
        weights that were evaluated and saved, BatchNorm statistics included, in eval mode:
        with EMA on, the module passed in would otherwise keep the raw weights. The forwards
        that kept layers in fp32 are taken away: the caller's module is its own again."""
        if self.ema is not None:
            self.model.load_state_dict(self.ema.model.state_dict())
        fp32_layers.restore(self.model)
        return self.model.eval()
