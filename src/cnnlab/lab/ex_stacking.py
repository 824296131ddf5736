"""Stacked 3×3 against one 7×7 (§3.2): the same receptive field for 27C² against 49C² weights.

Three 3×3 convolutions see a 7×7 window, as one 7×7 does, with 3·9·C² = 27C² weights against
49C² (a 45 % saving) and three non-linearities instead of one. What "the same receptive field"
leaves out is how the pixels of that window count: the effective receptive field (Luo et al.
2016; cnnlab.explain.effective_receptive_field: the smallest centred square holding 95 % of
|∂ centre unit / ∂ input|) of a stack concentrates near the centre.
"""

from __future__ import annotations

from cnnlab import load_spec, summary
from cnnlab.explain import effective_receptive_field
from cnnlab.lab.experiment import Context, Experiment, Verdict, figure_axes, mean_spread, seed_count
from cnnlab.lab.models import conv, spec

C = 16  # channels of the compared block
SAME_ACC = 1.0  # points: the stack must score at least the 7×7's accuracy minus this
SAME_ERF = 0.8  # the stack's effective side must be at least this share of the 7×7's


def net(block: str) -> list:
    """1×1 stem (1 -> C, adds no receptive field), the block (conv, batch norm, ReLU; no conv
    bias), then a shared tail; BLOCKS holds the index of the block's last ReLU."""
    unit = [conv(C, 3, bias=False), "batchnorm", "relu"]
    body = unit * 3 if block == "3×3 ×3" else [conv(C, 7, bias=False), "batchnorm", "relu"]
    stem = [conv(C, 1, bias=False), "batchnorm", "relu"]
    tail = [{"maxpool": 2}, conv(32, bias=False), "batchnorm", "relu", "gap", {"linear": 10}]
    return [*stem, *body, *tail]


BLOCKS = {"3×3 ×3": 11, "7×7": 5}  # block -> Sequential index of its last activation


def block_weights(block: str) -> tuple[int, int]:
    """(C→C conv weights of the block by the notes' formula, by cnnlab.summary)."""
    formula = 3 * 9 * C * C if block == "3×3 ×3" else 49 * C * C
    rows = summary(load_spec(spec("b", net(block)))).rows
    last = BLOCKS[block]
    counted = sum(r.params for r in rows[3 : last + 1] if r.kind == "Conv2d")
    return formula, counted


def measure(ctx: Context) -> dict:
    train, test = ctx.fashion(ctx.pick(1500, 6000), ctx.pick(1000, 3000))
    epochs = ctx.pick(3, 6)
    rf = {
        b: summary(load_spec(spec("b", net(b)))).rows[i].receptive_field for b, i in BLOCKS.items()
    }
    seeds, steps = [], 2 * len(ctx.seeds)
    for i, seed in enumerate(ctx.seeds):
        row: dict = {"seed": seed}
        for j, (block, index) in enumerate(BLOCKS.items()):
            ctx.progress(2 * i + j, steps, f"seed {seed}: {block}")
            trained = ctx.train(spec("b", net(block)), (train, test), seed, epochs=epochs)
            erf = effective_receptive_field(trained.model, str(index), (1, 28, 28), seed=seed)
            row[block] = {
                "test": round(100 * trained.accuracy(test.images, test.labels), 2),
                "erf": erf.measured,
                "gradient": erf.gradient[7:21, 7:21]
                .div(erf.gradient.max())
                .round(decimals=3)
                .tolist(),
            }
        seeds.append(row)
    weights = {b: block_weights(b) for b in BLOCKS}
    return {"seeds": seeds, "theoretical_rf": rf, "weights": weights, "channels": C}


def judge(m: dict) -> Verdict:
    """Theory: both blocks' receptive fields are 7 (cnnlab.summary) and the weights are 27C²
    and 49C² by formula and by count. Per seed: the stack's accuracy ≥ the 7×7's − SAME_ACC, and
    its effective side ≥ SAME_ERF × the 7×7's. Holds: theory and both on every seed. Partly:
    theory, but one of them fails on every seed. Does not hold: the theory fails.
    Otherwise inconclusive."""
    stack, single = BLOCKS
    w, rf, rows = m["weights"], m["theoretical_rf"], m["seeds"]
    c2 = m["channels"] ** 2
    theory = (
        rf[stack] == rf[single] == 7 and w[stack] == [27 * c2] * 2 and w[single] == [49 * c2] * 2
    )
    acc_ok = [r[stack]["test"] >= r[single]["test"] - SAME_ACC for r in rows]
    erf_ok = [r[stack]["erf"] >= SAME_ERF * r[single]["erf"] for r in rows]
    acc = {b: mean_spread([r[b]["test"] for r in rows]) for b in BLOCKS}
    erf = {b: mean_spread([r[b]["erf"] for r in rows]) for b in BLOCKS}
    numbers = {
        "theoretical receptive field (stack, 7×7)": f"{rf[stack]}, {rf[single]}",
        f"block weights, C={m['channels']} (stack, 7×7)": f"{w[stack][1]:,}, {w[single][1]:,}",
        "saving": f"{1 - w[stack][1] / w[single][1]:.1%}",
        **{
            f"{b}: test % / effective side (px)": f"{acc[b][0]:.1f} / {erf[b][0]:.1f}"
            for b in BLOCKS
        },
        "seeds": len(rows),
    }
    saving = 1 - w[stack][1] / w[single][1]
    said = (
        f"Theoretical fields {rf[stack]} and {rf[single]} px for {saving:.0%} fewer weights; "
        f"the stack's effective field was {erf[stack][0]:.1f} ± {erf[stack][1]:.1f} px against "
        f"{erf[single][0]:.1f} ± {erf[single][1]:.1f}, its accuracy {acc[stack][0]:.1f} ± "
        f"{acc[stack][1]:.1f} % against {acc[single][0]:.1f} ± {acc[single][1]:.1f} % (mean ± "
        f"sd over {seed_count(len(rows))}; accuracy at most {SAME_ACC:g} point below on "
        f"{sum(acc_ok)}, effective field at least {SAME_ERF:.0%} of the 7×7's on {sum(erf_ok)})"
    )
    if not theory:
        return Verdict(
            "does not hold", numbers, f"{said}: the receptive fields or weight counts differ."
        )
    if all(acc_ok) and all(erf_ok):
        return Verdict("holds", numbers, f"{said}.")
    if (all(acc_ok) or not any(acc_ok)) and (all(erf_ok) or not any(erf_ok)):
        lost = " and ".join(
            what for what, ok in (("accuracy", acc_ok), ("effective field", erf_ok)) if not all(ok)
        )  # both on every seed: "accuracy and effective field", not one of them
        return Verdict("partly", numbers, f"{said}: the stack lost {lost}.")
    return Verdict("inconclusive", numbers, f"{said}; the seeds disagree.")


def figure(m: dict):
    fig, axes = figure_axes(3, height=3.0)
    first = m["seeds"][0]
    for ax, block in zip(axes, BLOCKS, strict=False):
        ax.imshow(first[block]["gradient"], cmap="magma")
        ax.set_title(f"{block}: |∂ centre / ∂ input|\neffective side {first[block]['erf']} px")
        ax.axis("off")
    bars = axes[2]
    for k, block in enumerate(BLOCKS):
        mean, sd = mean_spread([r[block]["test"] for r in m["seeds"]])
        bars.bar(k, mean, yerr=sd, color=f"C{k}")
        bars.text(k, mean / 2, f"{m['weights'][block][1]:,}\nweights", ha="center", color="white")
    bars.set_xticks(range(2), list(BLOCKS))
    bars.set_ylabel("test accuracy (%)")
    return fig


EXPERIMENT = Experiment(
    name="stacking",
    title="Stacked 3×3 against one 7×7",
    section="§3.2",
    claim="Three stacked 3×3 convolutions have the receptive field of one 7×7 with 27C² "
    "instead of 49C² weights (45 % fewer) and three non-linearities instead of one.",
    setup=f"Fashion-MNIST subsets; a 1×1 stem to C={C} channels, then either three 3×3 convs or "
    "one 7×7 conv (C -> C, batch norm, ReLU), then a shared tail (max pool, 3×3 conv, GAP, "
    "linear). "
    "Theoretical receptive field and weights from cnnlab.summary; after training, the "
    "effective receptive field of the block's centre unit (95 % of the gradient mass) and "
    "the test accuracy.",
    rule=f"Holds if both fields are 7 and the weights are 27C² and 49C² (formula and count), "
    f"and on every seed the stack scores at least the 7×7's accuracy minus {SAME_ACC} point "
    f"with an effective side at least {SAME_ERF:.0%} of the 7×7's; partly if the theory holds "
    "and accuracy or effective field fails consistently; does not hold if the theory fails; "
    "otherwise inconclusive.",
    judge=judge,
    measure=measure,
    figure=figure,
)
