"""The lab: each claim of the CNN notes run as an experiment with a verdict fixed in code.

    from cnnlab.lab import experiments, run_lab, write_page
    chosen = experiments()                                 # or experiments(["floor"])
    results = run_lab(chosen, "lab", quick=True)           # DIR/results.json, saved per experiment
    write_page("lab", chosen, results)                     # DIR/lab.html

`cnnlab lab [--quick] [--only NAME ...] [--out DIR] [--seeds N] [--resume] [--rerun NAME ...]`
is the command; `--list` names the experiments.

How to add an experiment (one module per claim; `experiment.py` has the full contract):

1. Write `src/cnnlab/lab/ex_<name>.py` ending in `EXPERIMENT = Experiment(...)` with the claim
   in our own words and the notes' section, the setup, the verdict rule as a sentence (`rule`)
   *and* as a pure function `judge(measurements) -> Verdict` (one of "holds", "does not
   hold", "partly", "inconclusive", the numbers that decided it, one sentence on what it
   means), `measure(ctx) -> dict` (JSON-able, one entry per seed where noise matters) and
   `figure(measurements) -> matplotlib Figure` (drawn from the measurements alone, on
   `figure_axes(...)`). Put the thresholds in named constants at the top, each with a comment.
2. In `measure`, load data with `ctx.fashion(n_train, n_test)`, `ctx.digits()` or
   `ctx.shapes(...)` (cached; sizes from `ctx.pick(quick, full)`), loop over `ctx.seeds`,
   train with `ctx.train(spec_or_module, (train, test), seed, **TrainConfig fields)` (cnnlab's
   own trainer, nothing written to disk; `LAB_CONFIG` says where the lab departs from its
   defaults), start from `ctx.untrained(spec, data, seed)` for measurements at initialisation
   or random-weight controls, evaluate uint8 images with `Trained.accuracy/logits/inputs`,
   and report `ctx.progress(done, total, text)`. Never print. Specs for small nets are in
   `models.py`, image transforms (shift, pixel permutation) in `transforms.py`. Choose
   anything (an epoch, a temperature) on the validation split, never on the test set.
3. Add the module's name to `MODULES` in `registry.py` (its order is the page's order).
4. In `tests/test_lab_<name>.py` (or `tests/test_lab_rules.py` beside the shorter ones), test
   `judge` on made-up measurements, with at least one case each of "holds", "does not hold" and
   "inconclusive", and any formula the module adds against an independent truth. Keep
   `cnnlab lab --quick --only <name>` near 10 s of CPU.
"""

from cnnlab.lab.experiment import (
    OUTCOMES,
    Context,
    Experiment,
    Verdict,
    mean_spread,
)
from cnnlab.lab.page import render_page, write_page
from cnnlab.lab.registry import MODULES, experiments
from cnnlab.lab.runner import LabResults, load_results, run_lab

__all__ = [
    "MODULES",
    "OUTCOMES",
    "Context",
    "Experiment",
    "LabResults",
    "Verdict",
    "experiments",
    "load_results",
    "mean_spread",
    "render_page",
    "run_lab",
    "write_page",
]
