"""vanishing: ReLU's gradient flows through the 12 plain layers at He initialisation, not at
PyTorch's default (first/last ratio 6.9e-4 on the full lab's first seed, under the 1e-3
'vanished' line; He: 0.55). A verdict resting on ReLU's flow says that it is He-initialised
ReLU's; one where ReLU's shrank does not credit He. Made-up measurements, as
tests/test_lab_rules.py's; the initialisation itself is checked there against He's and
Glorot's formulas (test_initialise_gives_he_and_glorot_scales)."""

from __future__ import annotations

from cnnlab.lab import ex_vanishing
from test_lab_rules import vanishing

HE = "He-initialised ReLU's flowed (the result is ReLU's at He initialisation)"


def test_holds_says_the_flow_is_he_initialised_relus():
    v = ex_vanishing.judge(vanishing((1e-8, 0.5, 10.0, 60.0), (1e-7, 0.8, 11.0, 55.0)))
    assert v.outcome == "holds", v.meaning
    assert v.meaning.endswith(f"the sigmoid net learned far less, and {HE}."), v.meaning


def test_partly_with_the_flow_says_he_and_without_it_does_not():
    flowed = ex_vanishing.judge(vanishing((1e-8, 0.5, 10.0, 15.0), (1e-7, 0.8, 11.0, 12.0)))
    assert flowed.outcome == "partly", flowed.meaning
    assert flowed.meaning.endswith(f"sigmoid's vanished, and {HE}, but ReLU did not learn more.")
    shrank = ex_vanishing.judge(vanishing((1e-8, 1e-4, 10.0, 60.0), (1e-7, 0.8, 11.0, 55.0)))
    assert shrank.outcome == "partly" and "He-initialised" not in shrank.meaning, shrank.meaning


def test_the_rule_names_he_initialisation():
    assert "He-initialised ReLU's is at least" in ex_vanishing.EXPERIMENT.rule
