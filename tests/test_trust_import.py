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


def test_an_unwritable_out_fails_before_the_data_is_read_and_a_refusal_leaves_nothing(
    tmp_path, monkeypatch
):
    """--out under a file: the import read the data (a download, a folder scan) before it
    found out. Truth: train's order, --out first. A refused import leaves no directory."""
    from safetensors.torch import save_file

    from cnnlab.errors import RunError
    from cnnlab.train.source import parse_model_ref

    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "nets.py").write_text(tiny_net_source())
    (tmp_path / "wide.py").write_text(tiny_net_source(width=8))
    source = parse_model_ref(f"{tmp_path / 'nets.py'}:make")
    save_file(source.build().state_dict(), tmp_path / "w.safetensors")

    def no_data(*args, **kwargs):
        raise AssertionError("data read before --out was checked")

    monkeypatch.setattr(importing, "load_splits", no_data)
    with pytest.raises(RunError, match="cannot write --out"):
        importing.import_run(source, tmp_path / "w.safetensors", tmp_path / "file.txt" / "run")
    monkeypatch.undo()
    wide = parse_model_ref(f"{tmp_path / 'wide.py'}:make")
    with pytest.raises(RunError, match="does not fit"):  # 4 channels in the file, 8 made
        importing.import_run(wide, tmp_path / "w.safetensors", tmp_path / "run", "digits")
    assert not (tmp_path / "run").exists()


def test_an_import_into_a_run_says_it_holds_one(tmp_path):
    """A killed import leaves a run (the kill leaves no time to clean up): 'not empty;
    import into a new directory' did not say what is there nor that deleting it is safe."""
    from cnnlab.errors import RunError

    run = imported_run(tmp_path, tiny_net_source(), data="digits")
    with pytest.raises(RunError, match=f"holds a cnnlab run.*or delete {run} first"):
        imported_run(tmp_path, tiny_net_source(), data="digits")
