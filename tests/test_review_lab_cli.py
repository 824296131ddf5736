"""`cnnlab lab --quick --seeds 3` ran one seed without a word (the quick lab is one seed):
it is refused as every bad option is, one line, exit 2, before anything runs."""

from __future__ import annotations

from cnnlab.cli import main


def test_quick_with_more_seeds_is_refused(tmp_path, capsys):
    code = main(["lab", "--quick", "--seeds", "3", "--only", "floor", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--seeds" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "results.json").exists()


def test_quick_with_one_seed_runs(tmp_path, capsys):
    assert main(["lab", "--quick", "--seeds", "1", "--only", "floor", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "results.json").exists()


def test_rerun_of_an_experiment_only_leaves_out_is_refused(tmp_path, capsys):
    """`--only floor --rerun spatial` ran floor alone and never spatial, without a word."""
    code = main(["lab", "--quick", "--only", "floor", "--rerun", "spatial", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--rerun spatial" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "results.json").exists()
