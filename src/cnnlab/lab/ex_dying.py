"""Dying ReLU (§4.3-4.4): large updates leave ReLU units that never fire again.

A ReLU unit whose pre-activation is negative for every input outputs 0 and passes no
gradient, so nothing revives it. The notes' cause is a large update, their cure a negative
slope (Leaky ReLU, ELU, GELU). Measured: a small conv net without batch norm trained at a
sweep of peak learning rates, the share of channels that never fire on 512 training images
after training (cnnlab.diagnose.dead_units; for the leaky family "never positive"), and the
test accuracy.

A run *diverged* when the trainer stopped it (loss NaN/inf or 20× its start:
`TrainingDiverged`): it has no dead share. A run that ended *at chance* (accuracy below CHANCE
on the trainer's validation split, never the test set: it chooses which run is judged) with a
finite loss keeps its dead share and is marked "at chance". Whether such a
ReLU run died or broke is read from a measure that does not look at the accuracy: if one of
its ReLU layers is wholly silent (every channel dead on the images measured), every layer
after it sees the same input for every image, so the logits are the same for every image and
chance is what dead units give: the run died, and its dead share counts. A ReLU run at chance
with no silent layer is *broken*: it fell to chance for a reason its dead share does not
show, and the rule sets it aside like a stopped run. The rule is one-sided: the accuracy
never makes a run count as dead; it can only set aside a run whose dead units do not explain
it.
"""

from __future__ import annotations

from matplotlib.ticker import NullFormatter

from cnnlab.diagnose import dead_units
from cnnlab.errors import TrainingDiverged
from cnnlab.lab.experiment import (
    Context,
    Experiment,
    Verdict,
    each_seed,
    figure_axes,
    seed_count,
)
from cnnlab.lab.models import conv_stack, head, spec

ACTIVATIONS = {"relu": "relu", "leaky_relu": {"leaky_relu": 0.01}, "elu": "elu", "gelu": "gelu"}
DEAD = 0.25  # ReLU "dies" when at least this share of its channels never fire ...
MORE = 0.15  # ... and that is at least this much above its share at the lowest rate
ALIVE = 0.05  # Leaky ReLU "survives" with at most this dead share ...
TRAINS = 20.0  # ... and a test accuracy of at least this (%), i.e. it did not stop learning
# A run ending below this validation accuracy (%) learned nothing: 10 classes, chance 10 %. A
# guesser's accuracy on n images has sd sqrt(0.1·0.9/n): 2.4 points on the quick lab's 150
# validation images (10 % of 1,500), 1.2 on the full lab's 600; 15 % is 2 sd above chance on the
# quick lab, 4 on the full.
CHANCE = 15.0


def diverged(run: dict) -> bool:
    """The trainer stopped the run (loss NaN/inf or blown up): it has no dead share."""
    return run["diverged"]


def at_chance(run: dict) -> bool:
    """The run trained to the end (finite loss) but its validation accuracy is below CHANCE.
    It decides which run the rule reads, so the test set, which the verdict is read on, has no
    say in it. Results stored before "val" was recorded (an older results.json) read "test"."""
    return not run["diverged"] and run.get("val", run["test"]) < CHANCE


def silent(run: dict) -> bool:
    """One layer's every channel is dead on the images measured: for ReLU, every layer after
    it gets the same input for every image, so the logits are the same for every image. Read
    from the dead shares alone, not from the accuracy."""
    return not run["diverged"] and max(run.get("dead_per_layer") or [0.0]) >= 1.0


def judged(run: dict) -> bool:
    """A ReLU run the rule reads: not stopped, and not at chance unless a silent layer (dead
    units) explains it; a run at chance with no silent layer is broken, set aside."""
    return not diverged(run) and (silent(run) or not at_chance(run))


def shown(run: dict, relu: bool = False) -> str:
    """A run's dead share as the table gives it, or why it has none; `relu`: say whether a
    ReLU run at chance died (a silent layer) or broke (set aside)."""
    if diverged(run):
        return "diverged"
    share = f"{run['dead']:.0%}"
    if not at_chance(run):
        return share
    if not relu:
        return f"{share} (at chance)"
    return f"{share} (at chance, a layer silent)" if silent(run) else f"{share} (at chance, broken)"


def measure(ctx: Context) -> dict:
    train, test = ctx.fashion(ctx.pick(1500, 6000), ctx.pick(1000, 3000))
    rates = ctx.pick([0.03, 0.3, 1.0], [0.01, 0.03, 0.1, 0.3, 1.0])
    epochs = ctx.pick(2, 4)
    seeds, steps = [], len(ACTIVATIONS) * len(rates) * len(ctx.seeds)
    done = 0
    for seed in ctx.seeds:
        row: dict = {"seed": seed}
        for name, act in ACTIVATIONS.items():
            runs = []
            for lr in rates:
                ctx.progress(done, steps, f"seed {seed}: {name}, lr {lr}")
                done += 1
                layers = conv_stack((16, 32, 32), act=act, bn=False) + head("gap")
                try:
                    trained = ctx.train(
                        spec(name, layers), (train, test), seed, epochs=epochs, lr=lr
                    )
                except TrainingDiverged:
                    runs.append({"lr": lr, "diverged": True})
                    continue
                x = trained.inputs(train.images[:512])
                found = dead_units(trained.model, x)
                runs.append(
                    {
                        "lr": lr,
                        "diverged": False,
                        "dead": sum(layer.dead for layer in found.layers)
                        / sum(layer.channels for layer in found.layers),
                        "dead_per_layer": [round(layer.dead_share, 4) for layer in found.layers],
                        "val": round(100 * trained.metrics["val_acc"], 2),
                        "test": round(100 * trained.accuracy(test.images, test.labels), 2),
                    }
                )
            row[name] = runs
        seeds.append(row)
    return {"seeds": seeds, "rates": rates, "epochs": epochs}


def _at_top(runs: list[dict]) -> dict | None:
    """ReLU's run at the highest rate the rule reads (see `judged`)."""
    alive = [r for r in runs if judged(r)]
    return alive[-1] if alive else None


def _sweep(m: dict) -> dict[str, str]:
    """Dead share at each rate: ReLU and Leaky ReLU (what the rule reads) on every seed, ELU
    and GELU (context) on the first seed, each row naming its seed."""
    out = {}
    for name in ACTIVATIONS:
        rows = m["seeds"] if name in ("relu", "leaky_relu") else m["seeds"][:1]
        for row in rows:
            shares = ", ".join(f"{r['lr']}: {shown(r, name == 'relu')}" for r in row[name])
            out[f"{name}, seed {row['seed']}: dead share by peak rate"] = shares
    return out


def judge(m: dict) -> Verdict:
    """Per seed, at the highest rate where ReLU's run is `judged` (not stopped by the trainer,
    and not at chance unless a wholly silent layer explains it): ReLU *dies* if its dead share
    is ≥ DEAD and ≥ its share at the lowest rate + MORE (a ReLU not judged at the lowest rate,
    or at any rate, does not die); Leaky ReLU *survives* at that rate if the trainer did not
    stop it, its dead share is ≤ ALIVE and its accuracy ≥ TRAINS % (stopped: it does not
    survive). Holds: ReLU dies and
    Leaky survives on every seed. Partly: ReLU dies on every seed, Leaky does not survive on
    every seed. Does not hold: ReLU dies on no seed, every seed measured (a ReLU run judged at
    the lowest rate and at some rate). Otherwise inconclusive."""
    dies, survives, numbers = [], [], {}
    unmeasured = 0  # seeds with no ReLU run the rule reads, or none at the lowest rate
    for row in m["seeds"]:
        top, low = _at_top(row["relu"]), row["relu"][0]
        died = top is not None and judged(low)
        unmeasured += not died
        died = died and top["dead"] >= DEAD and top["dead"] >= low["dead"] + MORE
        dies.append(died)
        leaky = _leaky_at(row, top)
        ok = leaky is not None and not diverged(leaky)
        survives.append(ok and leaky["dead"] <= ALIVE and leaky["test"] >= TRAINS)
        if top is None:
            numbers[f"seed {row['seed']}"] = "ReLU diverged or broke at every rate"
            continue
        key = f"seed {row['seed']}: ReLU dead at lr {low['lr']} / {top['lr']}; Leaky at {top['lr']}"
        leaky_said = f"{leaky['dead']:.0%} dead, {leaky['test']:.0f} %" if ok else "diverged"
        leaky_said = "no run" if leaky is None else leaky_said
        numbers[key] = f"{shown(low, True)} / {shown(top, True)}; {leaky_said}"
    numbers.update(_sweep(m))
    numbers["seeds"] = len(m["seeds"])
    said = _said(m["seeds"], dies, survives)
    if all(dies) and all(survives):
        return Verdict(
            "holds", numbers, f"{said}: high rates killed ReLU units; Leaky ReLU kept them."
        )
    if all(dies):
        return Verdict("partly", numbers, f"{said}: {_leaky_failed(m['seeds'], survives)}")
    if not any(dies) and unmeasured:
        return Verdict(
            "inconclusive", numbers, f"{said}: on {unmeasured} of {seed_count(len(dies))} ReLU "
            "trained at no rate the rule reads, or not at the lowest, so whether its units die "
            "was not measured there.",
        )  # fmt: skip
    if not any(dies):
        return Verdict(
            "does not hold", numbers, f"{said}: at no rate where ReLU trained did its dead "
            f"share reach {DEAD:.0%} and {100 * MORE:.0f} points above the lowest rate's.",
        )  # fmt: skip
    return Verdict("inconclusive", numbers, f"{said}: {_split(dies, unmeasured)}.")


def _split(dies: list[bool], unmeasured: int) -> str:
    """Why ReLU dying on some seeds, not all, calls nothing: a seed whose ReLU run was measured
    and kept its units disagrees; a seed with no run the rule reads (`unmeasured`) measured no
    dying either way and disagrees with nothing."""
    n, kept = len(dies), len(dies) - sum(dies) - unmeasured  # measured, and did not die
    missing = (
        f"on {unmeasured} of {seed_count(n)} ReLU trained at no rate the rule reads, or not at "
        "the lowest, so no run there measured whether its units die"
    )
    if not kept:
        return f"ReLUs died on {sum(dies)} of {seed_count(n)}; {missing}"
    if unmeasured:
        return f"the seeds disagree on whether ReLUs died ({missing})"
    return "the seeds disagree on whether ReLUs died"


def _leaky_at(row: dict, top: dict | None) -> dict | None:
    """Leaky ReLU's run at the rate ReLU is judged at (`top`), if any."""
    return next((r for r in row["leaky_relu"] if top and r["lr"] == top["lr"]), None)


def _leaky_failed(rows: list[dict], survives: list[bool]) -> str:
    """Why Leaky ReLU did not survive on every seed (`survives`: per seed): a diverged run
    measured no dead share, so it neither shows nor refutes that the slope keeps units alive;
    a run that trained can refute it, and where every run that trained survived, none did."""
    at = [_leaky_at(r, _at_top(r["relu"])) for r in rows]
    missing = sum(x is None for x in at)  # no Leaky run at that rate: not a divergence
    broke = sum(x is not None and diverged(x) for x in at)
    n = len(rows)
    if missing == n:
        return (
            "high rates killed ReLU units, but Leaky ReLU has no run at that rate, so whether "
            "its slope keeps units alive there was not measured."
        )
    if missing and broke + missing + sum(survives) == n:
        return (
            f"high rates killed ReLU units; Leaky ReLU survived on {sum(survives)} of "
            f"{seed_count(n)}, diverged on {broke} and has no run at that rate on {missing}: "
            "no run it had there refuted that the slope keeps the units alive, but on those "
            "seeds it was not measured."
        )
    if broke + sum(survives) == n and broke < n:
        return (
            f"high rates killed ReLU units; Leaky ReLU survived on the {n - broke} of "
            f"{seed_count(n)} where it trained at that rate and diverged on the other {broke}: "
            "where the rate was trainable the slope kept the units alive, but it did not make "
            "the rate trainable on every seed."
        )
    if broke == n:
        return (
            "high rates killed ReLU units, but Leaky ReLU diverged at that rate, so it has no "
            "dead share there: the slope did not make the rate trainable, and whether it keeps "
            "units alive at that rate was not measured."
        )
    return (
        "high rates killed ReLU units; Leaky ReLU trained at that rate but lost units or "
        f"accuracy too (diverged on {broke} of {seed_count(n)}"
        f"{f', no run at that rate on {missing}' if missing else ''}): its slope did not "
        "keep the net healthy."
    )


def _span(values: list[float], form: str) -> str:
    """The value as shown when every seed shows the same, else "lowest-highest"."""
    low, high = form.format(min(values)), form.format(max(values))
    return low if low == high else f"{low}-{high}"


def _said(rows: list[dict], dies: list[bool], survives: list[bool]) -> str:
    """The dead shares the rule read, over every seed, in one sentence."""
    n = len(rows)
    tops = [(r, _at_top(r["relu"])) for r in rows]
    tops = [(r, top) for r, top in tops if top is not None]
    if not tops:
        return f"ReLU diverged or broke at every rate on {each_seed(n)}"
    lows = [r["relu"][0] for r, _ in tops if judged(r["relu"][0])]
    above = sum(any(x["lr"] > top["lr"] for x in r["relu"]) for r, top in tops)
    runs = [_leaky_at(r, top) for r, top in tops]
    leaky = [x for x in runs if x is not None]  # a missing run did not diverge
    alive = [x for x in leaky if not diverged(x)]
    chance = sum(at_chance(t) for _, t in tops)
    said = (
        "At the highest rate where ReLU's run counts (lr "
        f"{_span([t['lr'] for _, t in tops], '{:g}')}; stopped or broken above it on {above} of "
        f"{seed_count(n)}), {_span([t['dead'] for _, t in tops], '{:.0%}')} of its channels "
        f"were dead (test accuracy {_span([t['test'] for _, t in tops], '{:.0f}')} %"
    )
    if chance:
        said += (
            f"; at chance with a wholly silent layer, the same logits for every image, on "
            f"{chance} of {seed_count(n)}"
        )
    said += ")"
    if lows:
        said += f", against {_span([x['dead'] for x in lows], '{:.0%}')} at lr {lows[0]['lr']:g}"
    said += (
        f" (at least {DEAD:.0%} dead and {100 * MORE:.0f} points above the lowest rate on "
        f"{sum(dies)} of {seed_count(n)}); Leaky ReLU at that rate "
    )
    if alive:
        said += (
            f"had {_span([x['dead'] for x in alive], '{:.0%}')} dead and "
            f"{_span([x['test'] for x in alive], '{:.0f}')} % test accuracy where it trained, "
        )
    return said + (
        f"diverged on {len(leaky) - len(alive)} of {seed_count(n)}"
        + (
            f", has no run at that rate on {len(runs) - len(leaky)},"
            if len(runs) > len(leaky)
            else ""
        )
        + " and survived (at most "
        f"{ALIVE:.0%} dead, at least {TRAINS:.0f} % accuracy) on {sum(survives)}"
    )


def figure(m: dict):
    fig, (dead, acc) = figure_axes(2, height=3.2)
    for k, name in enumerate(ACTIVATIONS):
        for n, row in enumerate(m["seeds"]):
            runs = [r for r in row[name] if not diverged(r)]  # a stopped run has no share
            label = name if n == 0 else None
            lrs = [r["lr"] for r in runs]
            dead.plot(lrs, [100 * r["dead"] for r in runs], "o-", color=f"C{k}", ms=3, label=label)
            acc.plot(lrs, [r["test"] for r in runs], "o-", color=f"C{k}", ms=3, label=label)
            for r in row[name]:
                if diverged(r):  # stopped by the trainer: drawn at chance
                    acc.plot(r["lr"], 10, "x", color=f"C{k}", ms=8)
    acc.axhline(CHANCE, color="0.6", lw=0.8, ls="--")  # chance's level; "at chance" reads val
    for ax in (dead, acc):
        ax.set_xscale("log")
        ax.set_xticks(m["rates"], [f"{lr:g}" for lr in m["rates"]])  # the rates swept, as typed
        ax.xaxis.set_minor_formatter(NullFormatter())  # within a decade: "3×10⁻²4×10⁻²"
    # the × of a stopped run is drawn on the accuracy axes only: it has no dead share
    dead.set_xlabel("peak learning rate (stopped runs: no point)")
    acc.set_xlabel("peak learning rate (×: stopped, diverged)")
    dead.set_ylabel("channels that never fire (%)")
    acc.set_ylabel("test accuracy (%)")
    dead.legend(fontsize=8)
    return fig


EXPERIMENT = Experiment(
    name="dying",
    title="Dying ReLU",
    section="§4.3-4.4",
    claim="A large update can push a ReLU unit to output zero for every input; it then gets no "
    "gradient and stays dead. Leaky ReLU (and ELU, GELU) keep a gradient and prevent it.",
    setup="Fashion-MNIST subsets; three 3×3 conv layers (16, 32, 32) with max pooling and a GAP "
    "head, no batch norm, PyTorch's default initialisation, with ReLU, Leaky ReLU (0.01), ELU "
    "and GELU, each trained at a sweep of peak learning rates (SGD with Nesterov momentum). "
    "Dead share: channels never positive on 512 training images (cnnlab.diagnose.dead_units).",
    rule=f"A run diverged if the trainer stopped it (loss NaN or 20× its start): it has no dead "
    f"share. A run that ended at chance (accuracy below {CHANCE:.0f} % on the trainer's "
    "validation split, not the test set) with a finite loss "
    "keeps its dead share, marked 'at chance'; a ReLU run there died if one of its layers is "
    "wholly silent (every channel dead: the logits are the same for every image) and counts, "
    "and broke if none is, and is set aside (the accuracy never makes a run count as dead). "
    f"At the highest rate where ReLU's run counts, per seed: ReLU dies if at least {DEAD:.0%} "
    f"of its channels never fire and {MORE:.0%} more than at the lowest rate (not counted at "
    f"the lowest rate or at any rate: it does not die); Leaky ReLU survives if the trainer did "
    f"not stop it at that rate, at most {ALIVE:.0%} of its channels are dead and it reaches "
    f"{TRAINS:.0f} % test accuracy (stopped: it does not survive). Holds if ReLU dies and "
    "Leaky survives on every seed; partly if only ReLU's death holds on every seed; does not "
    "hold if ReLU dies on no seed and every seed measured it (a ReLU run counted at the lowest "
    "rate and at some rate); otherwise inconclusive.",
    judge=judge,
    measure=measure,
    figure=figure,
    caption="Left: the share of channels that never fire on 512 training images after training, "
    "against the peak learning rate, per activation and seed. Right: test accuracy at each rate "
    "(×: a run the trainer stopped as diverged; dashed: 15 %, near chance).",
    revised="after a first full run had been seen: a run at chance keeps its dead share, "
    "counted when a wholly silent layer explains it; and after a review: a seed with no ReLU "
    "run counted at the lowest rate, or at any rate, measured nothing and makes 'does not "
    "hold' inconclusive (the full lab's verdict stayed 'partly')",
)
