"""Spatial structure (§1): a fixed pixel permutation costs a CNN accuracy, an MLP nothing.

An MLP's first layer sees the pixels as an unordered list: permuting them the same way in
every image permutes the rows of its first weight matrix, so it can learn the same function.
A CNN's kernels read neighbours; after a permutation neighbours are unrelated pixels.
"""

from __future__ import annotations

import torch

from cnnlab.lab.experiment import (
    Context,
    Experiment,
    Verdict,
    disagreement,
    figure_axes,
    mean_spread,
    seed_count,
)
from cnnlab.lab.models import conv_stack, head, mlp, spec
from cnnlab.lab.transforms import permute_pixels

MLP_TOLERANCE = 2.0  # points: the MLP's accuracy counts as unchanged within this (test noise
# of 1,000 images is about 1.1 points at 85 %, √(0.85·0.15/1000); the two runs differ in
# initialisation only)
CNN_MARGIN = 3.0  # points: the CNN must lose at least this much more than the MLP

MLP = mlp((256,))
CNN = conv_stack((16, 32)) + head("flatten")


def measure(ctx: Context) -> dict:
    train, test = ctx.fashion_default()
    epochs = ctx.pick(2, 5)
    seeds, steps = [], 4 * len(ctx.seeds)
    for i, seed in enumerate(ctx.seeds):
        order = torch.randperm(28 * 28, generator=torch.Generator().manual_seed(seed))
        shuffled = (permute_pixels(train, order), permute_pixels(test, order))
        row = {"seed": seed}
        for j, (key, layers, data) in enumerate(
            [
                ("mlp", MLP, (train, test)),
                ("mlp_permuted", MLP, shuffled),
                ("cnn", CNN, (train, test)),
                ("cnn_permuted", CNN, shuffled),
            ]
        ):
            ctx.progress(4 * i + j, steps, f"seed {seed}: {key}")
            trained = ctx.train(spec(key, layers), data, seed, epochs=epochs)
            row[key] = round(100 * trained.accuracy(data[1].images, data[1].labels), 2)
        seeds.append(row)
    first = torch.randperm(28 * 28, generator=torch.Generator().manual_seed(ctx.seeds[0]))
    example = permute_pixels(test.subset(torch.arange(1)), first)
    return {
        "seeds": seeds,
        "epochs": epochs,
        "train_images": len(train),
        "test_images": len(test),
        "example": test.images[0, 0].tolist(),
        "example_permuted": example.images[0, 0].tolist(),
    }


def judge(m: dict) -> Verdict:
    """Per seed: the MLP unchanged (|drop| ≤ MLP_TOLERANCE) and the CNN losing at least
    CNN_MARGIN points more than the MLP. Both on every seed: holds; one of them on every seed:
    partly; neither on any seed: does not hold; seeds that disagree: inconclusive."""
    mlp_drop = [r["mlp"] - r["mlp_permuted"] for r in m["seeds"]]
    cnn_drop = [r["cnn"] - r["cnn_permuted"] for r in m["seeds"]]
    mlp_same = [abs(d) <= MLP_TOLERANCE for d in mlp_drop]
    cnn_falls = [c >= d + CNN_MARGIN for c, d in zip(cnn_drop, mlp_drop, strict=True)]
    (mlp_mean, mlp_sd), (cnn_mean, cnn_sd) = mean_spread(mlp_drop), mean_spread(cnn_drop)
    numbers = {
        "MLP drop (points, mean ± sd)": f"{mlp_mean:.2f} ± {mlp_sd:.2f}",
        "CNN drop (points, mean ± sd)": f"{cnn_mean:.2f} ± {cnn_sd:.2f}",
        "seeds": len(mlp_drop),
        "MLP unchanged on seeds": sum(mlp_same),
        "CNN falls further on seeds": sum(cnn_falls),
    }
    n = len(mlp_drop)
    said = (
        f"Shuffling the pixels cost the MLP {mlp_mean:.1f} ± {mlp_sd:.1f} points and the CNN "
        f"{cnn_mean:.1f} ± {cnn_sd:.1f} (mean ± sd over {seed_count(n)}); the MLP stayed within "
        f"{MLP_TOLERANCE:g} points on {sum(mlp_same)} of {seed_count(n)}, the CNN lost at least "
        f"{CNN_MARGIN:g} more than the MLP on {sum(cnn_falls)} of {n}"
    ) + _still_learning(m["seeds"])
    if all(mlp_same) and all(cnn_falls):
        return Verdict(
            "holds",
            numbers,
            f"{said}: the CNN's accuracy rests on pixel neighbourhoods, the MLP's not.",
        )
    if all(mlp_same) or all(cnn_falls):
        part = "the MLP was unchanged" if all(mlp_same) else "the CNN fell further"
        return Verdict("partly", numbers, f"{said}: only one half held on every seed ({part}).")
    if not any(mlp_same) and not any(cnn_falls):
        return Verdict("does not hold", numbers, f"{said}: neither half held on any seed.")
    split = disagreement({"MLP unchanged": mlp_same, "CNN fell further": cnn_falls})
    return Verdict("inconclusive", numbers, f"{said}: {split}; more seeds or data would decide.")


def _still_learning(rows: list[dict]) -> str:
    """A clause when the CNN scored below the MLP on the unshuffled images (mean over seeds):
    a CNN still learning, whose drop measures how slowly it learns shuffled pixels more than
    what it can reach (the quick lab, 2 epochs on 2,000 images: 66.0 % against the MLP's
    78.8 %, a 40.6-point drop that was 18.6 after 5 epochs and 5.3 after 10). Else ""."""
    cnn, mlp = (mean_spread([r[k] for r in rows])[0] for k in ("cnn", "mlp"))
    if cnn >= mlp:
        return ""
    return (
        f"; the CNN, at {cnn:.1f} % on the unshuffled images against the MLP's {mlp:.1f} %, "
        "was still learning, and its drop measures how slowly it learns shuffled pixels as "
        "much as what it can reach"
    )


def figure(m: dict):
    fig, (ax, a1, a2) = figure_axes(3, height=3.0)
    keys = ["mlp", "mlp_permuted", "cnn", "cnn_permuted"]
    labels = ["MLP", "MLP\npermuted", "CNN", "CNN\npermuted"]
    for k, key in enumerate(keys):
        values = [r[key] for r in m["seeds"]]
        mean, sd = mean_spread(values)
        ax.bar(k, mean, yerr=sd, color=f"C{k // 2}", alpha=1.0 if k % 2 == 0 else 0.5)
        ax.plot([k] * len(values), values, "k.", ms=4)
    ax.set_xticks(range(4), labels)
    ax.set_ylabel("test accuracy (%)")
    low = min(min(r[key] for key in keys) for r in m["seeds"])
    ax.set_ylim(max(0, low - 10), 100)
    ax.set_title(f"{m['train_images']} training images, {m['epochs']} epochs")
    shown = ((a1, "example", "a test image"), (a2, "example_permuted", "its pixels permuted"))
    for axis, key, title in shown:
        axis.imshow(m[key], cmap="gray", vmin=0, vmax=255)
        axis.set_title(title)
        axis.axis("off")
    return fig


EXPERIMENT = Experiment(
    name="spatial",
    title="Spatial structure",
    section="§1",
    claim="A CNN exploits which pixels are neighbours; an MLP, which flattens the image, does "
    "not. So one fixed shuffle of the pixels, the same for every image, should leave an MLP's "
    "accuracy where it was and cost a CNN accuracy.",
    setup="Fashion-MNIST subsets; a 1-hidden-layer MLP (256 units) and a 2-conv CNN (16, 32 "
    "filters, max pooling, flatten head), each trained on the original and on the permuted "
    "images (a different permutation per seed), same epochs and optimizer, no augmentation; "
    "test accuracy on the test subset, permuted alike.",
    rule=f"Holds if, on every seed, the MLP's accuracy changes by at most {MLP_TOLERANCE} "
    f"points and the CNN loses at least {CNN_MARGIN} points more than the MLP; partly if only "
    "one of the two holds on every seed; does not hold if neither holds on any seed; otherwise "
    "inconclusive.",
    judge=judge,
    measure=measure,
    figure=figure,
    caption="Left: test accuracy on the original and on the pixel-shuffled images (bars: mean; "
    "dots: seeds): the MLP's two bars should match, the CNN's second should drop. Right: one test "
    "image and the same image with its pixels permuted, as both models saw it.",
)
