"""What an experiment of the lab is: a claim, a rule in code, a measurement, a verdict.

An experiment module (`ex_<name>.py`) ends with one `EXPERIMENT = Experiment(...)`:

    EXPERIMENT = Experiment(
        name="spatial",                         # --only/--rerun name, key in results.json
        title="Spatial structure",
        section="§1",                           # where the notes make the claim
        claim="A CNN uses the neighbourhood of a pixel; an MLP does not ...",  # our words
        setup="One fixed pixel permutation applied to every image; ...",
        rule="Holds if, on every seed, ...",    # the rule as a sentence, shown on the page
        judge=judge,                            # measurements -> Verdict, pure, unit-tested
        measure=measure,                        # Context -> measurements (JSON-able dict)
        figure=figure,                          # measurements -> matplotlib Figure
        revised="",                             # a rule changed after a run: when and what
        caption="Left: ...; right: ...",        # what the figure shows, where to look
    )

`measure(ctx)` does the work: data from `ctx.fashion(n_train, n_test)` (or `ctx.digits()`,
`ctx.shapes(...)`), models trained with `ctx.train(spec_or_module, (train, test), seed)`
(cnnlab's own trainer), evaluation with `Trained.accuracy(images, labels)`. It returns a
dict of plain numbers, lists and strings; by convention `{"seeds": [{...per seed...}], ...}`
where noise matters. Sizes depend on `ctx.quick` (about 10 s per experiment on 2 cores) via
`ctx.pick(quick, full)`. It reports progress with `ctx.progress(done, total, text)`.

`judge(measurements)` is fixed in code before a run: a pure function of the measurements
(so a rule revised after a run can judge the stored measurements again) that returns a
`Verdict` with one of `OUTCOMES`, the numbers that decided it, and one sentence on what it
means. A rule on a mean says the spread it tolerates
(`mean_spread`), and a rule that cannot decide (too few seeds, a spread wider than the effect)
says "inconclusive" rather than guess.

`figure(measurements)` draws from the measurements alone (so a page can be re-rendered from
results.json without running anything), on `figure_axes(...)`; the page applies the style.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from cnnlab.data import ImageSet, load_dataset, normalization_stats, to_float, train_val_split
from cnnlab.data import shapes as shape_set
from cnnlab.design.build import build
from cnnlab.design.spec import load_spec
from cnnlab.errors import CnnlabError
from cnnlab.train import TrainConfig, train
from cnnlab.train.evaluate import predict_logits

OUTCOMES = ("holds", "does not hold", "partly", "inconclusive")
# Fashion-MNIST (train, test) images per experiment. Quick: about 140 s of CPU for the whole
# lab on one thread (a smoke run; vanishing, which tries 4 rates, is 51 s of it); full: 3× the
# images, about 2× the epochs, 3 seeds, so about 18× the training of the quick lab (about 32
# CPU minutes on one thread, 1,901 s measured; BENCHMARKS.md).
IMAGES = {"quick": (2000, 1000), "full": (6000, 3000)}
# Where the lab departs from TrainConfig's defaults, and why.
LAB_CONFIG = {
    "translate": 0,  # no shift augmentation: translation is what some experiments measure
    "flip": False,  # nor flips: the model learns from the images as they are
    "tta": False,  # the test accuracy of one view, the one the claims speak of
    "ema": None,  # the weights measured (dead units, gradients) are the weights trained
    "batch_size": 64,  # a few thousand images: enough steps per epoch to learn in 1-3 epochs
    "precision": "fp32",  # tiny nets: fp32 7 s against bf16 14 s for an MLP, 27 s against
    # 30 s for a 2-conv net (3,000 images, 2 epochs, 2 shared cores)
}


@dataclass(frozen=True)
class Verdict:
    """The outcome of a rule (one of OUTCOMES), the numbers that decided it, what it means."""

    outcome: str
    numbers: dict[str, Any]
    meaning: str

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}")

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "numbers": dict(self.numbers), "meaning": self.meaning}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(d["outcome"], dict(d["numbers"]), d["meaning"])


@dataclass(frozen=True)
class Experiment:
    """One claim of the notes as an experiment (see the module docstring for each field)."""

    name: str
    title: str
    section: str
    claim: str
    setup: str
    rule: str
    judge: Callable[[dict[str, Any]], Verdict]
    measure: Callable[[Context], dict[str, Any]]
    figure: Callable[[dict[str, Any]], Figure]
    # when the rule was changed after results had been seen, and what changed: the page says
    # it beside the rule ("" for a rule fixed before its first run)
    revised: str = ""
    # what the figure shows and where to look, under it on the page ("" for none)
    caption: str = ""

    def __repr__(self) -> str:
        return f"Experiment({self.name!r}, {self.title!r}, {self.section})"


class Spread(float):
    """A sample standard deviation that knows how many values gave it. Of one value (the
    quick lab's one seed, `--seeds 1`) it is unknown, not 0: it computes as 0 (a rule reads
    one seed's value alone, `Effect`), but is written "?" in any format ("82.3 ± ?" where
    every sentence and number of a one-seed lab said "82.3 ± 0.0", a spread no one measured).
    """

    n: int

    def __new__(cls, value: float, n: int) -> Spread:
        spread = super().__new__(cls, value)
        spread.n = n
        return spread

    def __format__(self, spec: str) -> str:
        return "?" if self.n < 2 else super().__format__(spec)


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation) of `values`; the spread, a `Spread`, of one value
    computes as 0 and is written "?" (unknown)."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), Spread(spread, len(values))


# How far under the least effect a mean over the seeds must lie for the effect to count as
# absent, in standard errors of the mean (sd/√n). A steadiness rule, not a significance test:
# with 3 seeds' sample sd (t, 2 degrees of freedom) 2 standard errors is about an 82 % band,
# with 2 seeds about 70 % (a 95 % band would need 4.3 and 12.7).
ERRORS = 2.0


@dataclass(frozen=True)
class Effect:
    """Per-seed differences, positive in the claim's direction, read against `least`, the
    smallest effect worth reporting (a test of the effect and of its absence, as in equivalence
    testing):

    - "shown": every seed's difference exceeds `least`: large enough on each seed;
    - "contradicted": no seed's difference exceeds `least`, and their mean falls short of it by
      at least ERRORS standard errors: too small (or reversed) on each seed, steadily;
    - "unsettled": anything else (seeds on both sides of `least`, or all under it with a mean
      within the band).

    Each seed must clear `least` itself: with `least` above 0 a tiny steady effect (0.1 on
    every seed) is not shown, and a large uneven one (10, 20, 30) is, which the rule this
    replaced (each seed beyond 2 sds of the differences) had the other way round. A mean test
    added to "shown" could only undo an effect every seed clears ((2.5, 3, 40) read as
    unsettled), so there is none. One seed measures no spread (standard error 0): its
    difference alone is read against `least`, as the quick lab's one-seed verdicts are.
    """

    differences: tuple[float, ...]
    least: float

    @property
    def mean(self) -> float:
        return mean_spread(self.differences)[0]

    @property
    def error(self) -> float:
        """Standard error of the mean: sample sd / √n (0 for one seed)."""
        return mean_spread(self.differences)[1] / math.sqrt(len(self.differences))

    @property
    def above(self) -> int:
        """Seeds whose difference exceeds `least`."""
        return sum(d > self.least for d in self.differences)

    @property
    def reading(self) -> str:
        n, band = len(self.differences), ERRORS * self.error
        if self.above == n:
            return "shown"
        if self.above == 0 and self.mean + band <= self.least:
            return "contradicted"
        return "unsettled"

    def said(self, fmt: str = "{:.1f}", unit: str = "") -> str:
        """How a verdict sentence gives it, numbers in `fmt`, `least` followed by `unit`: "more
        than 2.0 points on 3 of 3 seeds"; where no seed cleared `least`, with the band: "more
        than 2.0 points on 0 of 3 seeds, the mean short of 2.0 points by at least 2 standard
        errors (0.4)"."""
        n, least = len(self.differences), fmt.format(self.least) + unit
        counted = f"more than {least} on {self.above} of {seed_count(n)}"
        if n == 1:
            return f"{counted}, one seed having no standard error"
        if self.above > 0:
            return counted
        band = ERRORS * self.error
        by = "at least" if self.mean + band <= self.least else "less than"
        errors = f"{ERRORS:g} standard errors ({fmt.format(band)})"
        return f"{counted}, the mean short of {least} by {by} {errors}"


def seed_count(n: int) -> str:
    """How a verdict sentence counts seeds: "1 seed", "3 seeds" (the quick lab runs one)."""
    return f"{n} seed" if n == 1 else f"{n} seeds"


def each_seed(n: int) -> str:
    """How a sentence says "on every seed": "each of 3 seeds", and "1 of 1 seed" for one
    (the quick lab's; "each of 1 seed" is no English)."""
    return "1 of 1 seed" if n == 1 else f"each of {seed_count(n)}"


def disagreement(checks: dict[str, Sequence[bool]]) -> str:
    """Which checks an inconclusive verdict rests on, by how many seeds passed each: "the seeds
    split on 'X' (2 of 3); 'Y' failed on every seed". A check the seeds agree on is part of
    the answer, so "the seeds disagree" alone is no account of it: a claim half of which failed
    on every seed is read as undecided unless the sentence says which half."""
    split = [
        f"'{name}' ({sum(ok)} of {len(ok)})" for name, ok in checks.items() if 0 < sum(ok) < len(ok)
    ]
    said = [f"the seeds split on {' and '.join(split)}"] if split else []
    for outcome, count in (("held", len), ("failed", lambda ok: 0)):
        agreed = [f"'{name}'" for name, ok in checks.items() if sum(ok) == count(ok)]
        if agreed:
            said.append(f"{' and '.join(agreed)} {outcome} on every seed")
    return "; ".join(said)


def seed_points(ax, x: float, values: Sequence[float]) -> None:
    """Each seed's value as a black dot at `x` over a bar or mean: a bar of the mean alone
    hides whether the seeds agree, where a verdict rests on a difference between bars."""
    ax.plot([x] * len(values), list(values), "k.", ms=4, zorder=3)


def figure_axes(ncols: int = 1, nrows: int = 1, height: float = 3.0, width: float = 9.0):
    """A bare Figure (no pyplot, so nothing global changes) and its axes as a flat list."""
    fig = Figure(figsize=(width, height), layout="constrained")  # labels never overlap
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


@dataclass
class Trained:
    """A model trained by `Context.train`, with the normalization its training used."""

    model: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]
    metrics: dict[str, Any]  # the trainer's result: val_acc, test_acc, train_acc, ...
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl rows, per epoch
    # the images its weights were fitted on: the training set less the trainer's validation
    # split, where a training accuracy (an overfitting gap) is measured
    trained_on: ImageSet | None = None

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 `(N, C, H, W)` -> the normalized float input the model was trained on."""
        return to_float(images, self.mean, self.std)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 `(N, C, H, W)` -> logits `(N, classes)` in eval mode."""
        return predict_logits(self.model, self.inputs(images))

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        return float((self.logits(images).argmax(1) == labels).float().mean())


def _silent(done: float, total: float, text: str = "") -> None:
    pass


@dataclass
class Context:
    """What an experiment's `measure` gets: seeds, the quick flag, progress, cached data."""

    seeds: tuple[int, ...] = (0,)
    quick: bool = False
    progress: Callable[[float, float, str], None] = _silent
    cache: dict[Any, Any] = field(default_factory=dict)

    def pick(self, quick: Any, full: Any) -> Any:
        """`quick` in a quick lab, else `full` (subset sizes, epochs, sweep lengths)."""
        return quick if self.quick else full

    def _load(self, name: str, split: str, **kw) -> ImageSet:
        key = (name, split, tuple(sorted(kw.items())))
        if key not in self.cache:
            self.cache[key] = load_dataset(name, split, **kw)
        return self.cache[key]

    def fashion(self, n_train: int, n_test: int) -> tuple[ImageSet, ImageSet]:
        """The first `n_train` / `n_test` images of a fixed shuffle (seed 0) of Fashion-MNIST's
        train and test splits: the same subsets for every experiment and seed."""
        return (
            _head(self._load("fashion-mnist", "train"), n_train),
            _head(self._load("fashion-mnist", "test"), n_test),
        )

    def fashion_default(self) -> tuple[ImageSet, ImageSet]:
        """The lab's usual subsets: `IMAGES["quick"]` or `IMAGES["full"]` (train, test)."""
        return self.fashion(*IMAGES["quick" if self.quick else "full"])

    def digits(self) -> tuple[ImageSet, ImageSet]:
        """scikit-learn's 8×8 digits, its fixed train/test split (1,438 / 359)."""
        return self._load("digits", "train"), self._load("digits", "test")

    def shapes(self, n_train: int, n_test: int, size: int = 32) -> tuple[ImageSet, ImageSet]:
        """Generated shapes (square, circle, triangle, cross) of side `size`."""
        key = ("shapes", n_train, n_test, size)
        if key not in self.cache:
            self.cache[key] = (shape_set("train", n_train, size), shape_set("test", n_test, size))
        return self.cache[key]

    def train(
        self,
        model: Any,
        data: tuple[ImageSet, ImageSet],
        seed: int,
        **config: Any,
    ) -> Trained:
        """Train a spec, preset or nn.Module (in place) with cnnlab's trainer on
        `(train, test)`, writing nothing to disk. A spec is built as `untrained` builds it.

        The lab's defaults (`LAB_CONFIG`) differ from the trainer's where a claim needs it;
        `config` overrides any TrainConfig field (epochs, lr, precision, label_smoothing, ...).
        """
        cfg = TrainConfig(**{**LAB_CONFIG, "seed": seed, **config})
        history: list[dict[str, Any]] = []
        metrics = train(model, data, None, cfg, on_epoch=lambda row, _: history.append(row))
        trained_model = metrics.pop("model")
        part = _train_part(data[0], cfg)
        mean, std = normalization_stats(part)
        return Trained(trained_model, mean, std, metrics, history, part)

    def untrained(self, model_spec: Any, data: tuple[ImageSet, ImageSet], seed: int) -> Trained:
        """The model `train` would start from (same seed, same initial weights, same
        normalization), untrained: for measurements at initialisation and random-weight
        controls."""
        torch.manual_seed(seed)  # as the trainer seeds before it builds
        model = build(load_spec(model_spec)).eval()
        mean, std = _train_stats(data[0], TrainConfig(**{**LAB_CONFIG, "seed": seed}))
        return Trained(model, mean, std, {})


def _train_part(train_set: ImageSet, cfg: TrainConfig) -> ImageSet:
    """The images the trainer fits on: the training part of its seeded split (the same pure
    function, so the same images)."""
    if cfg.val_fraction:
        return train_val_split(train_set, cfg.val_fraction, cfg.seed)[0]
    return train_set


def _train_stats(train_set: ImageSet, cfg: TrainConfig) -> tuple[tuple, tuple]:
    """The trainer's normalization: statistics of the images it fits on."""
    return normalization_stats(_train_part(train_set, cfg))


def _head(ds: ImageSet, n: int) -> ImageSet:
    if n > len(ds):
        raise CnnlabError(f"{ds.source} has {len(ds)} images, fewer than the {n} asked for")
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    return ds.subset(order[:n], f"{ds.source} [first {n} of a seed-0 shuffle]")
