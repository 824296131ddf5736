"""Pooling's claim names ConcatPool2d and the experiment trains it (and average pooling) under
the same shifts, but its rule judges max pooling against the strided conv only: the sentence
reports the other two's agreement, says they are not judged, and counts the seeds where
average pooling kept more predictions than max pooling (all 3 of the full lab's: 88.9 % against
85.4 %), so "max pooling resists small shifts" is read against the strided conv it was judged
against. Made-up measurements, built as tests/test_lab_pooling.py's."""

from __future__ import annotations

import statistics

from cnnlab.lab import ex_pooling
from test_lab_pooling import pooling


def test_the_sentence_reports_average_and_concat_agreement_not_judged():
    m = pooling((85.0, 68.0, 0.30, 0.40), (86.0, 70.0, 0.30, 0.40))
    for r, (avg, concat) in zip(m["seeds"], ((89.0, 86.5), (90.0, 87.5)), strict=True):
        r["average"]["agreement"]["2"], r["concat"]["agreement"]["2"] = avg, concat
    v = ex_pooling.judge(m)
    assert v.outcome == "holds", v.meaning
    avg, concat = statistics.fmean([89.0, 90.0]), statistics.fmean([86.5, 87.5])
    sd = statistics.stdev([89.0, 90.0])
    assert f"average pooling kept {avg:.1f} ± {sd:.1f} %" in v.meaning, v.meaning
    assert f"ConcatPool2d {concat:.1f} ± {sd:.1f} % (shown, not judged" in v.meaning, v.meaning
    assert "average pooling above max pooling on 2 of 2 seeds" in v.meaning, v.meaning
    assert "resists small shifts better than a strided conv" in v.meaning
    assert "not judged" in ex_pooling.EXPERIMENT.claim
