"""Lab figures a learner can read: no two tick labels of an axis overlap, an axis of seeds
counts whole seeds, a log axis is not stretched by a value that is zero by construction, a
legend covers no bar. Truth: matplotlib's own text and patch extents after a real draw, with
the page's style. Measurements are made up in the shapes the experiments store (a quick lab:
one seed, rates that ReLU survived within one decade)."""

from __future__ import annotations

import itertools

import matplotlib
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.lines import Line2D
from matplotlib.offsetbox import DrawingArea

from cnnlab.lab import ex_dying, ex_heads, ex_nonlinearity, ex_parameters, ex_pooling
from cnnlab.report.plots import STYLE


def drawn(experiment, measurements):
    """The experiment's figure drawn as the page draws it (its style, Agg)."""
    with matplotlib.rc_context(STYLE):
        fig = experiment.figure(measurements)
        FigureCanvasAgg(fig).draw()
    return fig


def overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of tick labels on one axis whose drawn boxes intersect."""
    found = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = [
                t for t in axis.get_ticklabels(which="both") if t.get_visible() and t.get_text()
            ]
            boxes = [(t.get_text(), t.get_window_extent()) for t in labels]
            for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
                if box_a.overlaps(box_b):
                    found.append((a, b))
    return found


def parameters():
    cnn, small, wide = ex_parameters.MODELS
    return {
        "seeds": [{"seed": 0, cnn: 74.8, small: 76.8, wide: 80.7}],
        "params": {cnn: 24_058, small: 23_860, wide: 203_530},
        "arithmetic": ex_parameters.arithmetic(),
        "epochs": 3,
        "train_images": 2000,
    }


def dying():
    def runs(dead, diverged_from):
        out = []
        for lr, d in zip((0.03, 0.3, 1.0), dead, strict=True):
            out.append(
                {"lr": lr, "diverged": True}
                if lr >= diverged_from
                else {"lr": lr, "diverged": False, "dead": d, "dead_per_layer": [d], "test": 30.0}
            )
        return out

    row = {"seed": 0, "relu": runs((0.0, 0.31, 0), 1.0), "leaky_relu": runs((0.0, 0, 0), 0.3),
           "elu": runs((0.0, 0.0, 0), 1.0), "gelu": runs((0.0, 0.01, 0), 1.0)}  # fmt: skip
    return {"seeds": [row], "rates": [0.03, 0.3, 1.0], "epochs": 2}


def test_a_run_at_chance_keeps_its_dead_share_and_a_stopped_run_is_crossed():
    """ReLU at lr 1 ended at chance (9 %) with 80 % of its channels dead and a finite loss: its
    dead share is measured, so the dead-share panel shows it; Leaky ReLU, stopped by the
    trainer at 0.3 and 1, has no share there and is crossed on the accuracy panel."""
    m = dying()
    m["seeds"][0]["relu"][2] = {"lr": 1.0, "diverged": False, "dead": 0.8,
                                "dead_per_layer": [0.1, 0.9, 1.0], "test": 9.0}  # fmt: skip
    dead, acc = drawn(ex_dying, m).axes[:2]
    relu, leaky = dead.get_lines()[:2]
    assert list(relu.get_xdata()) == [0.03, 0.3, 1.0] and list(relu.get_ydata())[2] == 80
    assert list(leaky.get_xdata()) == [0.03]
    crosses = [ln for ln in acc.get_lines() if ln.get_marker() == "x"]
    assert sorted(float(ln.get_xdata()[0]) for ln in crosses if ln.get_color() == "C1") == [0.3, 1]
    assert not any(ln.get_color() == "C0" for ln in crosses)  # ReLU was never stopped


def nonlinearity(seeds: int):
    linear, logistic, relu = ex_nonlinearity.MODELS
    rows = [{"seed": i, linear: 82.0, logistic: 82.5, relu: 86.0, "max_diff_float64": 1e-13,
             "max_diff_float32": 1e-6} for i in range(seeds)]  # fmt: skip
    return {"seeds": rows, "epochs": 3, "train_images": 2000}


def pooling():
    radial = [4e-14, 0.47, 0.15, 0.10, 0.06, 0.05, 0.03, 0.02]  # bin 0: the mean, removed
    row = {"seed": 0, "spectra": {k: {"high": 0.33, "radial": radial} for k in ex_pooling.HALVINGS}}
    for name in ex_pooling.DOWNS:
        row[name] = {"test": 74.0, "agreement": {"1": 90.0, "2": 83.0}}
    return {"seeds": [row], "epochs": 3, "train_images": 2000}


@pytest.mark.parametrize(
    ("experiment", "measurements"),
    [(ex_parameters, parameters()), (ex_dying, dying())],
    ids=["parameters", "dying"],
)
def test_no_two_tick_labels_of_a_log_axis_overlap(experiment, measurements):
    assert overlaps(drawn(experiment, measurements)) == []


def test_the_parameter_counts_are_on_the_figure():
    """With the minor labels gone, each model's count is still read off the figure."""
    fig = drawn(ex_parameters, parameters())
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    for name, count in parameters()["params"].items():
        assert any(name in t and f"{count:,}" in t for t in texts), texts


@pytest.mark.parametrize("seeds", [1, 3])
def test_an_axis_of_seeds_has_whole_seeds_only(seeds):
    fig = drawn(ex_nonlinearity, nonlinearity(seeds))
    shown = [t.get_text() for t in fig.axes[1].get_xticklabels() if t.get_text()]
    assert shown == [str(s) for s in range(seeds)]


def test_the_spectrum_leaves_out_the_mean_that_was_removed():
    """Bin 0 is the mean, subtracted before the FFT: ~1e-14, it stretched the log axis over
    14 decades and pressed the two curves into one line."""
    ax = drawn(ex_pooling, pooling()).axes[1]
    for line in ax.get_lines():
        assert min(line.get_xdata()) >= 1
    low, high = ax.get_ylim()
    assert high / low < 1e4


def test_the_spectrum_draws_the_control_beside_average_pooling():
    """The low-pass claim is judged against subsampling: its curve is on the figure, named."""
    ax = drawn(ex_pooling, pooling()).axes[1]
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(ax.get_lines()) == 3 and any("subsampled" in n for n in names), names


def test_the_pooling_legend_covers_no_bar():
    ax = drawn(ex_pooling, pooling()).axes[0]
    legend = ax.get_legend().get_window_extent()
    bars = [p.get_window_extent() for p in ax.patches]
    assert not [b for b in bars if b.overlaps(legend)]


def heads():
    gap, flat = ex_heads.MODELS
    sides = ex_heads.SIDES
    accepts = {gap: {str(s): True for s in sides}, flat: {str(s): s in (24, 28) for s in sides}}
    row = {"seed": 0}
    for name in (gap, flat):
        row[name] = {"train": 90.0, "test": 87.0}
        for s in sides:
            if accepts[name][str(s)]:
                row[name][f"resized {s}"] = 70.0
                if s >= 28:
                    row[name][f"canvas {s}"] = 60.0
    return {"seeds": [row], "params": {gap: 14_458, flat: 17_018}, "accepts": accepts}


def test_the_heads_legend_tells_resized_from_canvas():
    """The two views of one head were told apart by the dash of their lines only, and in a
    legend handle of 14 px the marker and error bar cover the one gap: 'GAP head, resized' and
    'GAP head, canvas' looked the same. Their markers must differ. Truth: the legend's own
    handles, as drawn."""
    legend = drawn(ex_heads, heads()).axes[0].get_legend()
    areas = [a for a in legend.findobj(DrawingArea)]  # one per entry, holding what is drawn
    looks = {}
    for text, area in zip(legend.get_texts(), areas, strict=True):
        lines = [c for c in area.get_children() if isinstance(c, Line2D)]
        looks[text.get_text()] = [
            (ln.get_marker(), str(ln.get_markerfacecolor())) for ln in lines if ln.get_marker()
        ]
    for head in ex_heads.MODELS:
        assert looks[f"{head}, resized"] != looks[f"{head}, canvas"], looks


def test_the_floor_figure_hands_matplotlib_arrays_not_tensors():
    """matplotlib asks numpy for a tensor's array with copy=, which torch's __array__ refuses
    with a DeprecationWarning (an error under -W error): the figure passes numpy arrays."""
    import warnings

    import numpy as np

    from cnnlab.lab import ex_floor

    grads = {"P=0": np.random.default_rng(0).random((28, 28)).tolist(), "P=2": [[0.0] * 28] * 28}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = ex_floor.figure({"maps": grads})
    assert len(fig.axes) == 3  # two maps and the colour bar


def test_the_spectrum_axis_says_power_per_frequency_not_share_of_power():
    """Truth: white noise has a flat spectrum, so the share of its power in a ring grows with
    the ring's frequency count, while radial() of it is flat (the ring's mean power per
    frequency). The axis must name that, not a share of power."""
    import torch

    torch.manual_seed(0)
    profile = ex_pooling.radial(torch.randn(64, 16, 14, 14))[1:]
    assert max(profile) / min(profile) < 1.1  # flat: a mean per frequency, not a ring's share
    label = drawn(ex_pooling, pooling()).axes[1].get_ylabel()
    assert "share of power" not in label and "power per frequency" in label, label


def test_an_axis_names_the_stopped_run_marker_only_where_it_is_drawn():
    """Five stopped runs (each activation at 1.0, Leaky ReLU at 0.3 too): their × markers are on
    the accuracy axes, none on the dead-share axes, whose label then may not promise them."""
    fig = drawn(ex_dying, dying())
    dead, acc = fig.axes[:2]

    def crosses(ax):
        return sum(line.get_marker() == "x" for line in ax.get_lines())

    assert crosses(acc) == 5 and crosses(dead) == 0
    assert "×" in acc.get_xlabel() and "×" not in dead.get_xlabel(), dead.get_xlabel()
