"""A run records its image folder by its absolute path; after the folder moves (or the run is
copied to another machine) eval, probe, visualize, report and serve take `--data DIR`: the run read
from the folder where it is now. Only the same folder is accepted: the same classes, the
same kind of test split, and (checked when read) the files its test hold-out was drawn from.
Truth: the evaluation of the run before the move."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, load_run, train
from cnnlab.train.evaluate import evaluate
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

CONFIG = TrainConfig(epochs=1, batch_size=8, precision="fp32", bn_recalibrate=0, tta=False)


def _folder(root, classes=("dark", "light"), layout: bool = False):
    """Flat 8×8 images, 20 a class (class k a little lighter than class k-1); with `layout`,
    as DIR/train and DIR/test."""
    for split in ("train", "test") if layout else ("",):
        for k, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(20):
                image = np.full((8, 8), 80 * k + i, np.uint8)
                Image.fromarray(image).save(root / split / name / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """(run, where the folder is now, the run's evaluation before the move)."""
    tmp = tmp_path_factory.mktemp("moved")
    data, out = _folder(tmp / "imgs"), tmp / "run"
    train(tiny_spec(2), str(data), out, CONFIG)
    before = evaluate(load_run(out)).to_dict()
    new = tmp / "elsewhere"
    shutil.move(data, new)
    return out, new, before


def test_a_moved_folder_is_read_where_it_is_now(moved, capsys):
    out, new, before = moved
    with pytest.raises(RunError, match="no longer exists"):
        load_run(out).dataset("test")
    run = load_run(out).with_data(new)
    assert run.data == str(new.resolve())
    assert evaluate(run).to_dict() == before
    assert json.loads((out / "config.json").read_text())["data"] != str(new)  # nothing written
    assert main(["eval", str(out), "--data", str(new), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == before


def test_the_message_for_a_gone_folder_names_the_data_option(moved, capsys):
    out, _, _ = moved
    assert main(["eval", str(out)]) == 2
    assert "--data NEW_PLACE" in capsys.readouterr().err


def test_probe_and_report_take_the_new_place(moved, tmp_path):
    out, new, _ = moved
    probe = ["probe", str(out), "--data", str(new), "--train", "16", "--test", "8"]
    assert main([*probe, "--epochs", "5"]) == 0
    page = tmp_path / "page.html"
    assert main(["report", str(out), "--data", str(new), "--out", str(page)]) == 0
    assert "no longer exists" not in page.read_text()


def test_another_folder_is_refused(moved, tmp_path):
    out, new, _ = moved
    other = _folder(tmp_path / "other", classes=("cat", "dog"))
    with pytest.raises(RunError, match="holds the classes cat, dog; .* trained on dark, light"):
        load_run(out).with_data(other)
    fixed = _folder(tmp_path / "fixed", layout=True)
    with pytest.raises(RunError, match="had a 20% hold-out of its files as test images"):
        load_run(out).with_data(fixed)
    changed = tmp_path / "changed"
    shutil.copytree(new, changed)
    (changed / "dark" / "00.png").rename(changed / "dark" / "00b.png")  # redraws the hold-out
    with pytest.raises(RunError, match="has changed since the run held out"):
        load_run(out).with_data(changed).dataset("test")
    assert main(["eval", str(out), "--data", str(tmp_path / "nowhere")]) == 2


def test_a_named_data_set_takes_no_folder(tmp_path):
    out = tmp_path / "run"
    train(tiny_spec(10), "digits", out, CONFIG)
    with pytest.raises(RunError, match="this run's data is 'digits', which is not a folder"):
        load_run(out).with_data(tmp_path)


def test_a_run_from_before_the_holdout_record_takes_its_moved_folder(moved):
    out, new, before = moved
    run = load_run(out)
    older = {k: v for k, v in run.config.items() if k != "holdout"}  # as runs were written then
    run = type(run)(run.path, run.spec, run.model, older, run.source)
    assert evaluate(run.with_data(new)).to_dict() == before


def test_a_run_imported_without_data_is_told_to_import_again(moved):
    out, new, _ = moved
    run = load_run(out)
    bare = type(run)(run.path, run.spec, run.model, {**run.config, "data": None}, run.source)
    with pytest.raises(RunError, match="imported without --data.*import it again with --data"):
        bare.with_data(new)


def test_serve_reads_the_moved_folder(moved, capsys):
    from cnnlab.cli.serve import _load

    out, new, before = moved
    explorer = _load(str(out), str(new)).state.explorer
    assert explorer.run.data == str(new.resolve())
    assert len(explorer.test) == before["n"]
