"""The lab: each claim of the CNN notes run as an experiment with a verdict fixed in code.

    from cnnlab.lab import experiments, run_lab, write_page
    results = run_lab(experiments(), "lab", quick=True)   # DIR/results.json, one entry each
    write_page("lab", results)                            # DIR/lab.html

How to add an experiment (one module per claim; read `experiment.py` for the contract):

1. Write `src/cnnlab/lab/ex_<name>.py` ending in `EXPERIMENT = Experiment(...)` with:
   the claim in our own words and the notes' section; the setup; the verdict rule as a sentence
   (`rule`) *and* as a pure function `judge(measurements) -> Verdict`; `measure(ctx)` that
   returns JSON-able measurements (one entry per seed where noise matters); and
   `figure(measurements) -> matplotlib.figure.Figure`.
2. Train only through `ctx.train(...)` (cnnlab's trainer), load data only through
   `ctx.fashion(...)`, `ctx.digits()`, `ctx.shapes(...)` (cached, sized by `ctx.quick`),
   report progress with `ctx.progress(fraction, text)`, never print.
3. Add the module's name to `MODULES` in `registry.py` (the order is the page's order).
4. Test `judge` on made-up measurements in `tests/test_lab_rules.py`, with at least one case
   each for "holds", "does not hold" and "inconclusive"; `cnnlab lab --quick --only <name>`
   must stay near 10 s on 2 cores.

Anything chosen (an epoch, a temperature) is chosen on the validation split, never the test set.
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
