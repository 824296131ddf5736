"""The explorer page of a run imported without --data says what gives it test images: the
deep-layer panel and the empty grid said only that the run was imported without --data.
Truth: `cnnlab import`'s own --data option (its --help)."""

from __future__ import annotations

import pytest

from explorer_runs import explorer_page, wait_until
from test_serve_errors import imported  # noqa: F401  (the run imported without --data)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_run_without_test_images_is_told_how_to_get_them(imported, capsys):  # noqa: F811
    from cnnlab.cli import main

    with pytest.raises(SystemExit):
        main(["import", "--help"])
    assert "--data DATA" in capsys.readouterr().out  # the option the page names
    with explorer_page(imported) as (page, problems):
        grid = page.text_content("#samples")
        page.click("#draw-predict")
        wait_until(page, "state.maps !== null")
        note = page.text_content("#top-note")
    assert "import the run again with cnnlab import … --data NAME|DIR" in grid, grid
    assert "import it again with cnnlab import … --data NAME|DIR to rank them" in note, note
    assert "activation maximisation below needs none" in note and not problems, problems
