"""`cnnlab import` is all or nothing: stopped in its test evaluation (Ctrl-C, an error), it
leaves no half run that the next import refuses as 'not empty'."""

from __future__ import annotations

import pytest

from cnnlab.train import importing
from tiny_nets import imported_run, tiny_net_source

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


@pytest.mark.parametrize("existed", [False, True], ids=["new-out", "empty-out"])
def test_an_import_stopped_in_its_evaluation_leaves_nothing_and_can_run_again(
    existed, tmp_path, monkeypatch
):
    """Truth: `out` as it was before (absent, or an empty directory), then the same import
    completing with its evaluation.json."""
    run = tmp_path / "run"
    if existed:
        run.mkdir()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importing, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        imported_run(tmp_path, tiny_net_source(), data="digits")
    assert run.is_dir() == existed and not (existed and any(run.iterdir()))
    monkeypatch.undo()
    imported_run(tmp_path, tiny_net_source(), data="digits")
    assert (run / "evaluation.json").is_file() and (run / "model.safetensors").is_file()


def test_an_imported_run_is_not_resumed(tmp_path):
    """An import has no TrainConfig nor checkpoint: --resume trained a freshly built model
    with default options over the imported weights. Truth: the weights as imported."""
    from cnnlab.errors import RunError
    from cnnlab.train import train

    run = imported_run(tmp_path, tiny_net_source(), data="digits")
    weights = (run / "model.safetensors").read_bytes()
    with pytest.raises(RunError, match="made by cnnlab import.*no training to continue"):
        train(None, None, run, resume=True)
    assert (run / "model.safetensors").read_bytes() == weights
