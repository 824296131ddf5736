"""`cnnlab diagnose RUN --data D` on a run imported without data (the way its message names):
images of another number of classes are refused (`--data shapes` on a 10-class run ran its 4
labels through the 10 outputs without a word), other names for as many classes are noted; and
the table marks dead units behind frozen weights as the findings and --json do."""

from __future__ import annotations

import textwrap

import pytest
from safetensors.torch import save_file

from cnnlab.cli import main
from cnnlab.train.importing import import_run
from cnnlab.train.source import parse_model_ref

# digits' size and classes; the stem is frozen with 2 of its 6 channels dead (bias -100)
NETS = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make():
        net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3),
                            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
        with torch.no_grad():
            net[0].bias.copy_(torch.tensor([-100.0] * 2 + [1.0] * 4))
        net[0].requires_grad_(False)
        return net
    """
)


def imported(tmp_path, classes: list[str]):
    (tmp_path / "nets.py").write_text(NETS)
    source = parse_model_ref(f"{tmp_path / 'nets.py'}:make")
    save_file(source.build().state_dict(), tmp_path / "w.safetensors")
    out = tmp_path / "run"
    import_run(source, tmp_path / "w.safetensors", out, classes=classes,
               mean=[0.3], std=[0.4], input_shape=[1, 8, 8])  # fmt: skip
    return str(out)


def test_data_of_another_number_of_classes_is_refused_in_one_line(tmp_path, capsys):
    run = imported(tmp_path, list("0123456789"))
    assert main(["diagnose", run, "--data", "shapes"]) == 2
    err = capsys.readouterr().err
    assert "--data shapes has 4 classes" in err and "classifies 10" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_other_names_are_noted_and_the_table_marks_frozen_dead_units(tmp_path, capsys):
    run = imported(tmp_path, list("abcdefghij"))
    assert main(["diagnose", run, "--data", "digits"]) == 0
    out, err = capsys.readouterr()
    assert "labels are read by position" in err
    rows = [line for line in out.splitlines() if line.strip().startswith(("│ 1", "| 1", "1 "))]
    assert any("(frozen)" in row for row in rows), out


def test_a_split_the_data_lacks_names_the_option(tmp_path, capsys):
    """`--split val` was blamed on the run's data ('RUN: cannot load its data ...'); as eval's
    --split, it is the option that is refused, with the splits there are."""
    run = imported(tmp_path, list("0123456789"))
    with pytest.raises(SystemExit) as exit_:
        main(["diagnose", run, "--data", "digits", "--split", "val"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --split" in err and "'train', 'test'" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_folder_of_one_class_is_said_in_the_singular(tmp_path, capsys):
    """'--data DIR has 1 classes (cat)'."""
    import numpy as np
    from PIL import Image

    (tmp_path / "one" / "cat").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(
            tmp_path / "one" / "cat" / f"{i}.png"
        )
    run = imported(tmp_path, list("0123456789"))
    assert main(["diagnose", run, "--data", str(tmp_path / "one")]) == 2
    err = capsys.readouterr().err
    assert "has 1 class (cat)" in err and "Traceback" not in err, err
