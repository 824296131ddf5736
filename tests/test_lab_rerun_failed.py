"""A --rerun whose code fails keeps the stored result (a bug must not cost a finished
experiment), and the page said nothing of the failure: it showed the stored verdict as if
the rerun had given it (the terminal's progress line said 'failed', its table the old
verdict). The page now says the rerun failed, with the error, and when the verdict shown
was measured. Truth: the entry results.json holds and the error the experiment raised."""

from __future__ import annotations

from cnnlab.lab import load_results, render_page, run_lab
from test_lab import fake


def test_a_failed_rerun_is_named_beside_the_stored_verdict(tmp_path):
    run_lab([fake("a", 1.0), fake("b", 1.0)], tmp_path)
    finished = load_results(tmp_path).experiments["a"]["finished"]
    chosen = [fake("a", fail=RuntimeError("broken since")), fake("b", 1.0)]
    results = run_lab(chosen, tmp_path, rerun=["a"])
    assert results.experiments["a"]["finished"] == finished  # the stored result is kept
    html = render_page(chosen, results)
    section_a = html.split('<section id="a">')[1].split("</section>")[0]
    assert "RuntimeError: broken since" in section_a and finished in section_a
    assert "it failed" in html.split('<table id="verdicts">')[1].split("</table>")[0]
    section_b = html.split('<section id="b">')[1].split("</section>")[0]
    assert "failed" not in section_b
