"""Dying ReLU (§4.3-4.4): large updates leave ReLU units that never fire again.

A ReLU unit whose pre-activation is negative for every input outputs 0 and passes no
gradient, so nothing revives it. The notes' cause is a large update, their cure a negative
slope (Leaky ReLU, ELU, GELU). Measured: a small conv net without batch norm trained at a
sweep of peak learning rates, the share of channels that never fire on 512 training images
after training (cnnlab.diagnose.dead_units; for the leaky family "never positive"), and the
test accuracy; a run whose loss became NaN is recorded as diverged.
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
    """The run at the highest rate that did not diverge."""
    alive = [r for r in runs if not r["diverged"]]
    return alive[-1] if alive else None


def _sweep(m: dict) -> dict[str, str]:
    """Dead share at each rate for every activation (first seed; the rule reads all seeds)."""
    row = m["seeds"][0]
    return {
        f"{name}: dead share by peak rate": ", ".join(
            f"{r['lr']}: " + ("diverged" if r["diverged"] else f"{r['dead']:.0%}")
            for r in row[name]
        )
        for name in ACTIVATIONS
    }


def judge(m: dict) -> Verdict:
    """Per seed, at the highest rate where ReLU did not diverge: ReLU *dies* if its dead share
    is ≥ DEAD and ≥ its share at the lowest rate + MORE; Leaky ReLU *survives* at that rate if
    it did not diverge, its dead share is ≤ ALIVE and its accuracy ≥ TRAINS %. Holds: ReLU dies
    and Leaky survives on every seed. Partly: ReLU dies on every seed, Leaky does not survive on
    every seed. Does not hold: ReLU dies on no seed. Otherwise inconclusive."""
    dies, survives, numbers = [], [], {}
    for row in m["seeds"]:
        top, low = _at_top(row["relu"]), row["relu"][0]
        died = top is not None and not low["diverged"]
        died = died and top["dead"] >= DEAD and top["dead"] >= low["dead"] + MORE
        dies.append(died)
        leaky = next((r for r in row["leaky_relu"] if top and r["lr"] == top["lr"]), None)
        ok = leaky is not None and not leaky["diverged"]
        survives.append(ok and leaky["dead"] <= ALIVE and leaky["test"] >= TRAINS)
        if top is None:
            numbers[f"seed {row['seed']}"] = "ReLU diverged at every rate"
            continue
        said = f"{leaky['dead']:.0%} dead, {leaky['test']:.0f} %" if ok else "diverged"
        key = f"seed {row['seed']}: ReLU dead at lr {low['lr']} / {top['lr']}; Leaky at {top['lr']}"
        lows = "diverged" if low["diverged"] else f"{low['dead']:.0%}"
        numbers[key] = f"{lows} / {top['dead']:.0%}; {said}"
    numbers.update(_sweep(m))
    numbers["seeds"] = len(m["seeds"])
    said = _said(m["seeds"], dies, survives)
    if all(dies) and all(survives):
        return Verdict(
            "holds", numbers, f"{said}: high rates killed ReLU units; Leaky ReLU kept them."
        )
    if all(dies):
        return Verdict(
            "partly",
            numbers,
            f"{said}: high rates killed ReLU units, but Leaky ReLU did not keep training well "
            "at that rate: the slope keeps units alive, it does not make the rate safe.",
        )
    if not any(dies):
        return Verdict(
            "does not hold", numbers, f"{said}: no learning rate killed a large share of ReLUs."
        )
    return Verdict("inconclusive", numbers, f"{said}: the seeds disagree on whether ReLUs died.")


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
    lows = [r["relu"][0] for r, _ in tops if not r["relu"][0]["diverged"]]
    leaky = [
        next((x for x in r["leaky_relu"] if x["lr"] == top["lr"]), {"diverged": True})
        for r, top in tops
    ]
    alive = [x for x in leaky if not x["diverged"]]
    said = (
        f"At the highest rate ReLU trained at (lr {_span([t['lr'] for _, t in tops], '{:g}')}), "
        f"{_span([t['dead'] for _, t in tops], '{:.0%}')} of its channels were dead (test "
        f"accuracy {_span([t['test'] for _, t in tops], '{:.0f}')} %)"
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
    diverged = len(leaky) - len(alive)
    return said + (
        f"diverged on {diverged} of {seed_count(n)} and survived (at most {ALIVE:.0%} dead, at "
        "least "
        f"{TRAINS:.0f} % accuracy) on {sum(survives)}"
    )


def figure(m: dict):
    fig, (dead, acc) = figure_axes(2, height=3.2)
    for k, name in enumerate(ACTIVATIONS):
        for n, row in enumerate(m["seeds"]):
            runs = [r for r in row[name] if not r["diverged"]]
            label = name if n == 0 else None
            lrs = [r["lr"] for r in runs]
            dead.plot(lrs, [100 * r["dead"] for r in runs], "o-", color=f"C{k}", ms=3, label=label)
            acc.plot(lrs, [r["test"] for r in runs], "o-", color=f"C{k}", ms=3, label=label)
            for r in row[name]:
                if r["diverged"]:
                    acc.plot(r["lr"], 10, "x", color=f"C{k}", ms=8)
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
    rule=f"At the highest rate where ReLU did not diverge, per seed: ReLU dies if at least "
    f"{DEAD:.0%} of its channels never fire and {MORE:.0%} more than at the lowest rate; Leaky "
    f"ReLU survives if it did not diverge, at most {ALIVE:.0%} of its channels are dead and it "
    f"reaches {TRAINS:.0f} % test accuracy. Holds if ReLU dies and Leaky survives on every "
    "seed; partly if only ReLU's death holds on every seed; does not hold if ReLU dies on no "
    "seed; otherwise inconclusive.",
    judge=judge,
    measure=measure,
    figure=figure,
)
