"""Weight sharing's trade-off, as the notes give it: less variance (a smaller train-test gap)
at the price of more bias, a lower accuracy on the images a net was fitted on (the full lab:
88.2 % for the conv net against 94.2 % unshared, on 3 of 3 seeds). Both halves are judged; the
test accuracy, on which the notes make no claim, is shown beside the verdict, not judged (the
rule asked it to be at least as high, and read the full lab's trade-off as 'partly'). Made-up
measurements, built as tests/test_lab_rules.py's."""

from __future__ import annotations

import statistics

from cnnlab.lab import ex_sharing
from test_lab_rules import sharing

# the full lab's pattern: (conv train, conv test, unshared train, unshared test) per seed
FULL = [(88.3, 84.9, 94.2, 85.8), (88.0, 84.8, 94.0, 85.5), (88.4, 84.9, 94.3, 86.1)]


def test_the_sentence_reports_the_training_accuracy_the_notes_call_bias():
    v = ex_sharing.judge(sharing(*FULL))
    conv = [r[0] for r in FULL]
    local = [r[2] for r in FULL]
    said = (
        f"the conv net fitted its training images to {statistics.fmean(conv):.1f} ± "
        f"{statistics.stdev(conv):.1f} % against {statistics.fmean(local):.1f} ± "
        f"{statistics.stdev(local):.1f} % (lower on 3 of 3 seeds: the bias"
    )
    assert said in v.meaning, v.meaning


def test_the_trade_off_holds_whichever_net_wins_on_test():
    """Less overfitting and a lower fit on every seed is the notes' claim, so it holds though
    the unshared net scores higher on test; the test accuracies are in the sentence, said not
    to be judged, and the claim says so."""
    v = ex_sharing.judge(sharing(*FULL))
    assert v.outcome == "holds", v.meaning
    test = [r[1] for r in FULL]
    said = f"its test accuracy {statistics.fmean(test):.1f} ± {statistics.stdev(test):.1f} %"
    assert said in v.meaning and "at least as high on 0 of 3 seeds; shown, not judged" in v.meaning
    assert "not judged" in ex_sharing.EXPERIMENT.claim
    assert "Test accuracy is shown, not judged" in ex_sharing.EXPERIMENT.rule
    assert "'partly' to 'holds'" in ex_sharing.EXPERIMENT.revised


def test_no_bias_is_partly_however_high_the_test_accuracy():
    """A conv net that overfits less but fits its training images better than the unshared
    one showed no bias: one half of the trade-off, 'partly', even with the higher test
    accuracy the rule used to ask for."""
    rows = [(96.0, 90.0, 95.0, 80.0), (96.5, 90.5, 95.0, 81.0)]
    v = ex_sharing.judge(sharing(*rows))
    assert v.outcome == "partly" and "only less overfitting held" in v.meaning, v.meaning
