"""A preset trained on a folder of another class count is told how to change its classes: it
was told to "end the spec with `linear: 4`", but a preset user has no spec file. Truth: the
instruction followed to the letter (copy the named file, change its last linear) trains with
the real `cnnlab train`."""

from __future__ import annotations

import re
import shutil

import numpy as np
from PIL import Image

from cnnlab.cli import main


def test_the_preset_message_is_followed_to_a_run(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    for name in "abcd":
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (28, 28), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    options = ["--data", str(tmp_path / "data"), "--epochs", "1", "--batch-size", "8"]
    capsys.readouterr()
    assert main(["train", "--preset", "fast", *options, "--out", "runs/a"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "end the spec with" not in err, err
    found = re.search(
        r"copy its spec (\S+) to (\S+), change its last `linear:` to `linear: 4`", err
    )
    assert found, err
    shutil.copy(found[1], found[2])
    text = open(found[2]).read()
    last = text.rindex("linear: 10")
    open(found[2], "w").write(text[:last] + "linear: 4" + text[last + len("linear: 10") :])
    command = re.search(r"`cnnlab train (\S+) \.\.\.` instead of --preset fast", err)
    assert command and command[1] == found[2], err
    assert main(["train", command[1], *options, "--out", "runs/b", "--quiet"]) == 0
    assert (tmp_path / "runs" / "b" / "model.safetensors").is_file()


def test_a_spec_file_is_still_told_to_end_with_the_linear(tmp_path, capsys):
    from cnnlab.design.spec import load_spec

    (tmp_path / "mine.yaml").write_text(load_spec("fast").to_yaml())
    for name in "ab":
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (28, 28), 40 * i).save(tmp_path / "data" / name / f"{i}.png")
    args = ["train", str(tmp_path / "mine.yaml"), "--data", str(tmp_path / "data")]
    assert main([*args, "--batch-size", "2", "--out", str(tmp_path / "run")]) == 2
    assert "end the spec with `linear: 2`" in capsys.readouterr().err
