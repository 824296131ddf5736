"""Dying ReLU (§4.3-4.4): large updates leave ReLU units that never fire again.

A ReLU unit whose pre-activation is negative for every input outputs 0 and passes no
gradient, so nothing revives it. The notes' cause is a large update, their cure a negative
slope (Leaky ReLU, ELU, GELU). Measured: a small conv net without batch norm trained at a
sweep of peak learning rates, the share of channels that never fire on 512 training images
after training (cnnlab.diagnose.dead_units; for the leaky family "never positive"), and the
test accuracy.

A run that diverged has no dead share: once the loss has run away, or the net has fallen
back to guessing, units are silent because the run broke, whatever the activation, and a
share of them says nothing about dying. A run counts as diverged if the trainer stopped it
(loss NaN/inf or 20× its start: `TrainingDiverged`) or it ended at chance (test accuracy below
CHANCE; a ReLU net whose loss stayed finite can still end there, outputting one class). Its
numbers stay in the measurements; the rule, the table and the figure call it diverged.
"""

from __future__ import annotations

from matplotlib.ticker import NullFormatter

from cnnlab.diagnose import dead_units
from cnnlab.errors import TrainingDiverged
from cnnlab.lab.experiment import Context, Experiment, Verdict, figure_axes, seed_count
from cnnlab.lab.models import conv_stack, head, spec

ACTIVATIONS = {"relu": "relu", "leaky_relu": {"leaky_relu": 0.01}, "elu": "elu", "gelu": "gelu"}
DEAD = 0.25  # ReLU "dies" when at least this share of its channels never fire ...
MORE = 0.15  # ... and that is at least this much above its share at the lowest rate
ALIVE = 0.05  # Leaky ReLU "survives" with at most this dead share ...
TRAINS = 20.0  # ... and a test accuracy of at least this (%), i.e. it did not stop learning
# A run ending below this test accuracy (%) learned nothing: 10 classes, chance 10 %; 1,000
# test images put a guesser within 10 ± 1 %. It counts as diverged, like a stopped run.
CHANCE = 15.0


def diverged(run: dict) -> bool:
    """The rule's divergence: the trainer stopped the run, or it ended at chance."""
    return run["diverged"] or run["test"] < CHANCE


def shown(run: dict) -> str:
    """A run's dead share as the table gives it, or why it has none."""
    if run["diverged"]:
        return "diverged"
    return "diverged (at chance)" if diverged(run) else f"{run['dead']:.0%}"


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
                        "test": round(100 * trained.accuracy(test.images, test.labels), 2),
                    }
                )
            row[name] = runs
        seeds.append(row)
    return {"seeds": seeds, "rates": rates, "epochs": epochs}


def _at_top(runs: list[dict]) -> dict | None:
    """The run at the highest rate that did not diverge (see `diverged`)."""
    alive = [r for r in runs if not diverged(r)]
    return alive[-1] if alive else None


def _sweep(m: dict) -> dict[str, str]:
    """Dead share at each rate for every activation (first seed; the rule reads all seeds)."""
    row = m["seeds"][0]
    return {
        f"{name}: dead share by peak rate": ", ".join(f"{r['lr']}: {shown(r)}" for r in row[name])
        for name in ACTIVATIONS
    }


def judge(m: dict) -> Verdict:
    """Per seed, at the highest rate where ReLU did not diverge (`diverged`: stopped by the
    trainer or ended at chance): ReLU *dies* if its dead share is ≥ DEAD and ≥ its share at the
    lowest rate + MORE (a ReLU that diverged at the lowest rate, or at every rate, does not
    die); Leaky ReLU *survives* at that rate if it did not diverge, its dead share is ≤ ALIVE
    and its accuracy ≥ TRAINS % (diverging counts as not surviving). Holds: ReLU dies and
    Leaky survives on every seed. Partly: ReLU dies on every seed, Leaky does not survive on
    every seed. Does not hold: ReLU dies on no seed. Otherwise inconclusive."""
    dies, survives, numbers = [], [], {}
    for row in m["seeds"]:
        top, low = _at_top(row["relu"]), row["relu"][0]
        died = top is not None and not diverged(low)
        died = died and top["dead"] >= DEAD and top["dead"] >= low["dead"] + MORE
        dies.append(died)
        leaky = _leaky_at(row, top)
        ok = leaky is not None and not diverged(leaky)
        survives.append(ok and leaky["dead"] <= ALIVE and leaky["test"] >= TRAINS)
        if top is None:
            numbers[f"seed {row['seed']}"] = "ReLU diverged at every rate"
            continue
        key = f"seed {row['seed']}: ReLU dead at lr {low['lr']} / {top['lr']}; Leaky at {top['lr']}"
        leaky_said = f"{leaky['dead']:.0%} dead, {leaky['test']:.0f} %" if ok else "diverged"
        numbers[key] = f"{shown(low)} / {top['dead']:.0%}; {leaky_said}"
    numbers.update(_sweep(m))
    numbers["seeds"] = len(m["seeds"])
    said = _said(m["seeds"], dies, survives)
    if all(dies) and all(survives):
        return Verdict(
            "holds", numbers, f"{said}: high rates killed ReLU units; Leaky ReLU kept them."
        )
    if all(dies):
        return Verdict("partly", numbers, f"{said}: {_leaky_failed(m['seeds'])}")
    if not any(dies):
        return Verdict(
            "does not hold",
            numbers,
            f"{said}: at no rate where ReLU trained were a large share of its units dead.",
        )
    return Verdict("inconclusive", numbers, f"{said}: the seeds disagree on whether ReLUs died.")


def _leaky_at(row: dict, top: dict | None) -> dict | None:
    """Leaky ReLU's run at the rate ReLU is judged at (`top`), if any."""
    return next((r for r in row["leaky_relu"] if top and r["lr"] == top["lr"]), None)


def _leaky_failed(rows: list[dict]) -> str:
    """Why Leaky ReLU did not survive: a diverged run measured no dead share, so it neither
    shows nor refutes that the slope keeps units alive; a run that trained can refute it."""
    at = [_leaky_at(r, _at_top(r["relu"])) for r in rows]
    broke = sum(x is None or diverged(x) for x in at)
    if broke == len(rows):
        return (
            "high rates killed ReLU units, but Leaky ReLU diverged at that rate, so it has no "
            "dead share there: the slope did not make the rate trainable, and whether it keeps "
            "units alive at that rate was not measured."
        )
    return (
        "high rates killed ReLU units; Leaky ReLU trained at that rate but lost units or "
        f"accuracy too (diverged on {broke} of {seed_count(len(rows))}): its slope did not "
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
        return f"ReLU diverged at every rate on each of {seed_count(n)}"
    lows = [r["relu"][0] for r, _ in tops if not diverged(r["relu"][0])]
    above = sum(any(x["lr"] > top["lr"] for x in r["relu"]) for r, top in tops)
    leaky = [_leaky_at(r, top) or {"diverged": True} for r, top in tops]
    alive = [x for x in leaky if not diverged(x)]
    said = (
        "At the highest rate where ReLU did not diverge (lr "
        f"{_span([t['lr'] for _, t in tops], '{:g}')}; it diverged above it on {above} of "
        f"{seed_count(n)}), {_span([t['dead'] for _, t in tops], '{:.0%}')} of its channels "
        f"were dead (test accuracy {_span([t['test'] for _, t in tops], '{:.0f}')} %)"
    )
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
        f"diverged on {len(leaky) - len(alive)} of {seed_count(n)} and survived (at most "
        f"{ALIVE:.0%} dead, at least {TRAINS:.0f} % accuracy) on {sum(survives)}"
    )


def figure(m: dict):
    fig, (dead, acc) = figure_axes(2, height=3.2)
    for k, name in enumerate(ACTIVATIONS):
        for n, row in enumerate(m["seeds"]):
            runs = [r for r in row[name] if not diverged(r)]  # a diverged run has no share
            label = name if n == 0 else None
            lrs = [r["lr"] for r in runs]
            dead.plot(lrs, [100 * r["dead"] for r in runs], "o-", color=f"C{k}", ms=3, label=label)
            acc.plot(lrs, [r["test"] for r in runs], "o-", color=f"C{k}", ms=3, label=label)
            for r in row[name]:
                if diverged(r):  # stopped: drawn at chance; at chance: where it ended
                    acc.plot(r["lr"], 10 if r["diverged"] else r["test"], "x", color=f"C{k}", ms=8)
    for ax in (dead, acc):
        ax.set_xscale("log")
        ax.set_xticks(m["rates"], [f"{lr:g}" for lr in m["rates"]])  # the rates swept, as typed
        ax.xaxis.set_minor_formatter(NullFormatter())  # within a decade: "3×10⁻²4×10⁻²"
        ax.set_xlabel("peak learning rate (×: diverged)")
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
    rule=f"A run diverged if the trainer stopped it (loss NaN or 20× its start) or it ended at "
    f"chance (test accuracy below {CHANCE:.0f} %); a diverged run has no dead share. At the "
    f"highest rate where ReLU did not diverge, per seed: ReLU dies if at least {DEAD:.0%} of "
    f"its channels never fire and {MORE:.0%} more than at the lowest rate (diverged at the "
    f"lowest rate or at every rate: it does not die); Leaky ReLU survives if it did not "
    f"diverge at that rate, at most {ALIVE:.0%} of its channels are dead and it reaches "
    f"{TRAINS:.0f} % test accuracy (diverged: it does not survive). Holds if ReLU dies and "
    "Leaky survives on every seed; partly if only ReLU's death holds on every seed; does not "
    "hold if ReLU dies on no seed; otherwise inconclusive.",
    judge=judge,
    measure=measure,
    figure=figure,
)
