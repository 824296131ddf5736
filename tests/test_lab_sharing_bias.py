"""Weight sharing's trade-off, as the notes give it: less variance (a smaller train-test gap,
judged) at the price of more bias. Bias shows as a lower accuracy on the images a net was
fitted on (the full lab: 88.2 % for the conv net against 94.2 % unshared, on 3 of 3 seeds);
the sentence reports it beside the verdict, said not to be judged. Made-up measurements, built
as tests/test_lab_rules.py's."""

from __future__ import annotations

import statistics

from cnnlab.lab import ex_sharing
from test_lab_rules import sharing


def test_the_sentence_reports_the_training_accuracy_the_notes_call_bias():
    rows = [(88.3, 84.9, 94.2, 85.8), (88.0, 84.8, 94.0, 85.5), (88.4, 84.9, 94.3, 86.1)]
    v = ex_sharing.judge(sharing(*rows))
    conv = [r[0] for r in rows]
    local = [r[2] for r in rows]
    said = (
        f"the conv net fitted its training images to {statistics.fmean(conv):.1f} ± "
        f"{statistics.stdev(conv):.1f} % against {statistics.fmean(local):.1f} ± "
        f"{statistics.stdev(local):.1f} % (lower on 3 of 3 seeds: the bias"
    )
    assert said in v.meaning, v.meaning
    assert "shown, not judged" in v.meaning and "not judged" in ex_sharing.EXPERIMENT.claim
    assert v.outcome == "partly"  # the rule is unchanged: test accuracy at least as high failed
