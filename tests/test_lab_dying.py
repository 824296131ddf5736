"""The dying experiment's verdict rule on made-up measurements, as tests/test_lab_rules.py's:
ReLU's dead share by peak rate against Leaky ReLU's, a run at chance told apart as dead (a layer
silent) or broken, a run the trainer stopped left without a share, every seed of both in the
table, and a sentence that never says a slope kept alive units it did not measure."""

from __future__ import annotations

import pytest

from cnnlab.lab import ex_dying


def dying(*rows, rates=(0.03, 0.3, 1.0)):
    """Per seed: {activation: [per rate: a dead share (test 60 %, one layer), (dead share, test
    %) or (dead share, test %, dead share per layer), or None (stopped by the trainer)]}."""
    seeds = []
    for i, per_act in enumerate(rows):
        row = {"seed": i}
        for act in ex_dying.ACTIVATIONS:
            shares = per_act.get(act, [0.0] * len(rates))
            row[act] = [run(lr, d) for lr, d in zip(rates, shares, strict=True)]
        seeds.append(row)
    return {"seeds": seeds, "rates": list(rates)}


def run(lr: float, d) -> dict:
    if d is None:
        return {"lr": lr, "diverged": True}
    dead, test, layers = (d, 60.0, None) if not isinstance(d, tuple) else (*d, None)[:3]
    return {"lr": lr, "diverged": False, "dead": dead, "test": test,
            "dead_per_layer": layers or [dead]}  # fmt: skip


# ReLU's stored full-lab run at lr 1 (seed 0): 9 % test accuracy, block 3 wholly silent
SILENT = (0.7875, 9.0, [0.0625, 0.9375, 1.0])
# the same accuracy with every layer still firing somewhere: at chance, but not from dead units
BROKEN = (0.8, 9.0, [0.7, 0.8, 0.9])


@pytest.mark.parametrize(
    ("rows", "outcome"),
    [
        ([{"relu": [0.0, 0.4, None], "leaky_relu": [0.0, 0.0, None]}] * 2, "holds"),
        ([{"relu": [0.0, 0.4, None], "leaky_relu": [0.0, None, None]}], "partly"),  # stopped
        ([{"relu": [0.0, 0.4, 0.6], "leaky_relu": [0.0, 0.2, 0.3]}], "partly"),  # leaky died too
        ([{"relu": [0.0, 0.05, None]}, {"relu": [0.0, 0.1, 0.1]}], "does not hold"),
        ([{"relu": [0.3, 0.4, None]}], "does not hold"),  # dead already at the lowest rate
        # never trained: nothing measured, not evidence that nothing dies
        ([{"relu": [None, None, None]}], "inconclusive"),
        ([{"relu": [None, None, None]}, {"relu": [0.0, 0.05, None]}], "inconclusive"),
        ([{"relu": [0.0, 0.4, None]}, {"relu": [0.0, 0.05, None]}], "inconclusive"),
        # ReLU at chance at lr 1 with a silent layer: it died there (79 %), judged at lr 1
        ([{"relu": [0.0, 0.05, SILENT], "leaky_relu": [0.0, 0.0, None]}], "partly"),
        ([{"relu": [0.0, 0.05, SILENT], "leaky_relu": [0.0, 0.0, (0.01, 70.0)]}], "holds"),
        # ... at chance with no silent layer: broken, set aside; judged at 0.3
        ([{"relu": [0.0, 0.4, BROKEN], "leaky_relu": [0.0, 0.0, None]}], "holds"),
        ([{"relu": [0.0, 0.05, BROKEN], "leaky_relu": [0.0, 0.0, None]}], "does not hold"),
        # Leaky at chance where ReLU is judged: it trained, but it did not survive
        ([{"relu": [0.0, 0.4, None], "leaky_relu": [0.0, (0.0, 9.0), None]}], "partly"),
        # ReLU broken at the lowest rate: no baseline, so its dying was not measured
        ([{"relu": [BROKEN, 0.4, None]}], "inconclusive"),
    ],
)
def test_dying_rule(rows, outcome):
    assert ex_dying.judge(dying(*rows)).outcome == outcome


def test_a_run_at_chance_keeps_its_dead_share_and_a_stopped_run_has_none():
    """Stopped by the trainer: 'diverged', no share. At chance with a finite loss: its share,
    marked; for ReLU, whether a silent layer (dead units) explains it or it broke."""
    m = dying({"relu": [0.0, BROKEN, SILENT], "leaky_relu": [0.0, (0.7, 9.0), None]})
    v = ex_dying.judge(m)
    assert v.numbers["relu, seed 0: dead share by peak rate"] == (
        "0.03: 0%, 0.3: 80% (at chance, broken), 1.0: 79% (at chance, a layer silent)"
    )
    assert v.numbers["leaky_relu, seed 0: dead share by peak rate"] == (
        "0.03: 0%, 0.3: 70% (at chance), 1.0: diverged"
    )
    key = "seed 0: ReLU dead at lr 0.03 / 1.0; Leaky at 1.0"
    assert v.numbers[key] == "0% / 79% (at chance, a layer silent); diverged"
    assert v.outcome == "partly" and "79%" in v.meaning and "9 %" in v.meaning, v.meaning
    assert "silent layer" in v.meaning and "diverged on 1 of 1 seed" in v.meaning, v.meaning


def test_every_seed_of_relu_and_leaky_is_in_the_table():
    v = ex_dying.judge(dying({"relu": [0.0, 0.4, None]}, {"relu": [0.0, 0.5, None]}))
    for name in ("relu", "leaky_relu"):
        assert {f"{name}, seed {s}: dead share by peak rate" for s in (0, 1)} <= set(v.numbers)
    assert "elu, seed 1: dead share by peak rate" not in v.numbers  # context: first seed


@pytest.mark.parametrize(
    ("rate", "stopped", "at_chance", "silent", "judged"),
    [
        (None, True, False, False, False),  # the trainer stopped it
        (0.4, False, False, False, True),  # trained, 60 %
        (SILENT, False, True, True, True),  # at chance, block 3 silent: died
        (BROKEN, False, True, False, False),  # at chance, every layer fires somewhere: broke
        ((0.5, 15.0, [0.5]), False, False, False, True),  # 15 %: not below chance
        ((1.0, 40.0, [1.0]), False, False, True, True),  # silent, above chance: counts anyway
    ],
)
def test_what_each_run_is(rate, stopped, at_chance, silent, judged):
    r = run(1.0, rate)
    got = (ex_dying.diverged(r), ex_dying.at_chance(r), ex_dying.silent(r), ex_dying.judged(r))
    assert got == (stopped, at_chance, silent, judged)


def test_a_leaky_relu_that_diverged_is_not_said_to_keep_units_alive():
    """Where Leaky ReLU diverged it measured no dead share: the verdict may say the rate was
    not trainable, not that the slope kept units alive."""
    v = ex_dying.judge(dying({"relu": [0.0, 0.4, None], "leaky_relu": [0.0, None, None]}))
    assert v.outcome == "partly"
    assert "keeps units alive, it" not in v.meaning and "not measured" in v.meaning, v.meaning
    died = ex_dying.judge(dying({"relu": [0.0, 0.4, 0.6], "leaky_relu": [0.0, 0.2, 0.3]}))
    assert "not measured" not in died.meaning and "lost units" in died.meaning, died.meaning


def test_a_leaky_relu_that_survived_wherever_it_trained_is_not_said_to_lose_units():
    """Seed 0: Leaky diverged at ReLU's rate; seed 1: it trained there with 0 % dead and 60 %
    accuracy (survived). 'Partly', but the sentence may not say it lost units or accuracy."""
    v = ex_dying.judge(
        dying(
            {"relu": [0.0, 0.4, None], "leaky_relu": [0.0, None, None]},
            {"relu": [0.0, 0.4, None], "leaky_relu": [0.0, 0.0, None]},
        )
    )
    assert v.outcome == "partly"
    assert "lost units" not in v.meaning and "did not keep" not in v.meaning, v.meaning
    assert "survived on the 1 of 2 seeds where it trained" in v.meaning, v.meaning
    assert "diverged on the other 1" in v.meaning, v.meaning
    # one trained seed that lost units: the old sentence, which the numbers then support
    lost = ex_dying.judge(
        dying(
            {"relu": [0.0, 0.4, None], "leaky_relu": [0.0, None, None]},
            {"relu": [0.0, 0.4, None], "leaky_relu": [0.0, 0.3, None]},
        )
    )
    assert lost.outcome == "partly" and "lost units" in lost.meaning, lost.meaning


def test_a_relu_already_dead_at_the_lowest_rate_is_not_said_to_have_no_dead_units():
    """40 % dead at 0.3 against 30 % at 0.03: many units dead, but not 15 points more than at
    the lowest rate. 'Does not hold', and the sentence may not say few units were dead."""
    v = ex_dying.judge(dying({"relu": [0.3, 0.4, None]}))
    assert v.outcome == "does not hold"
    assert "were a large share of its units dead" not in v.meaning, v.meaning
    assert v.meaning.endswith("did its dead share reach 25% and 15 points above the lowest rate's.")


def test_a_seed_where_relu_never_counted_is_not_read_as_no_dying():
    """ReLU stopped at every rate: no dead share was measured, so no verdict on dying."""
    v = ex_dying.judge(dying({"relu": [None, None, None]}))
    assert v.outcome == "inconclusive"
    assert "was not measured there" in v.meaning and "on 1 of 1 seed" in v.meaning, v.meaning


def test_a_seed_with_no_relu_run_that_counts_does_not_disagree_with_one_that_died():
    """ReLU died on seed 0; on seed 1 it trained at no rate (nothing measured): that seed says
    nothing either way, so the sentence counts it as unmeasured, not as a disagreement. With a
    third seed whose ReLU trained and kept its units, the seeds do disagree."""
    died, unmeasured, kept = {"relu": [0.0, 0.4, None]}, {"relu": [None] * 3}, {"relu": [0.0] * 3}
    v = ex_dying.judge(dying(died, unmeasured))
    assert v.outcome == "inconclusive", v.meaning
    assert "disagree" not in v.meaning, v.meaning
    assert v.meaning.endswith(
        ": ReLUs died on 1 of 2 seeds; on 1 of 2 seeds ReLU trained at no rate the rule reads, "
        "or not at the lowest, so no run there measured whether its units die."
    ), v.meaning
    three = ex_dying.judge(dying(died, unmeasured, kept)).meaning
    assert ": the seeds disagree on whether ReLUs died (on 1 of 3 seeds ReLU" in three, three


def test_a_missing_leaky_run_is_not_counted_as_diverged():
    """Leaky ReLU has no run at the rate ReLU is judged at on seed 1 (none stored there): it
    did not diverge, it was not run."""
    m = dying(*[{"relu": [0.0, 0.4, None], "leaky_relu": [0.0, 0.0, None]}] * 2)
    m["seeds"][1]["leaky_relu"] = [r for r in m["seeds"][1]["leaky_relu"] if r["lr"] != 0.3]
    v = ex_dying.judge(m)
    assert v.outcome == "partly", v.meaning
    assert "diverged on 1" not in v.meaning, v.meaning
    assert "diverged on 0 of 2 seeds, has no run at that rate on 1, and survived" in v.meaning
    assert "survived on 1 of 2 seeds, diverged on 0 and has no run at that rate on 1" in v.meaning
    assert v.numbers["seed 1: ReLU dead at lr 0.03 / 0.3; Leaky at 0.3"].endswith("; no run")


def test_at_chance_is_read_on_the_validation_split_not_the_test_set():
    """Whether a run is at chance decides which run the rule reads (a broken ReLU run is set
    aside), so it is the trainer's validation accuracy that decides, never the test accuracy
    the verdict is read on. BROKEN's layers all fire somewhere: at chance it is set aside and
    ReLU is judged at 0.3 (5 % dead: it does not die); the same run at 60 % on validation is
    not at chance, so it counts at lr 1 (80 % dead: ReLU dies), whatever its test accuracy."""
    m = dying({"relu": [0.0, 0.05, BROKEN], "leaky_relu": [0.0, 0.0, None]})
    assert ex_dying.judge(m).outcome == "does not hold"
    m["seeds"][0]["relu"][2]["val"] = 60.0  # test still 9 %
    assert not ex_dying.at_chance(m["seeds"][0]["relu"][2])
    assert ex_dying.judge(m).outcome == "partly"  # ReLU died at lr 1; Leaky stopped there
    healthy = run(1.0, (0.8, 60.0, [0.7, 0.8, 0.9])) | {"val": 9.0}  # test 60 %, val at chance
    assert ex_dying.at_chance(healthy)
    assert ex_dying.shown(healthy, relu=True) == "80% (at chance, broken)"


def test_the_rule_says_at_chance_is_read_on_validation():
    rule = ex_dying.EXPERIMENT.rule
    assert (
        "at chance (accuracy below 15 % on the trainer's validation split, not the test set)"
        in rule
    )
