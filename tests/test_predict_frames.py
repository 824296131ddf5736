"""predict and explain read an animated GIF or a multi-page TIFF at its first frame, as
training and the explorer do, and now say so on stderr; they said nothing. Truth: Pillow's
own frame count of the file written, and the first frame's answer equal to a single-frame
file's."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from cnnlab.data.notes import frames_note

pytestmark = pytest.mark.usefixtures("one_thread")


def save_frames(path, n: int) -> None:
    frames = [Image.new("L", (28, 28), 40 * k) for k in range(n)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as img:
        assert img.n_frames == n  # the truth the note must repeat


def test_predict_and_explain_say_a_file_of_many_frames_is_read_at_its_first(tmp_path, capsys):
    from cnnlab.cli import main
    from explorer_runs import shapes_run

    run = shapes_run(tmp_path, 4, batch_size=4, val_fraction=0.25)
    gif, first = tmp_path / "walk.gif", tmp_path / "first.png"
    save_frames(gif, 3)
    Image.new("L", (28, 28), 0).save(first)
    assert main(["predict", str(run), str(gif), str(first), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "walk.gif holds 3 frames (an animation or pages); only its first frame is read" in err
    assert "first.png" not in err
    answers = json.loads(out)
    assert answers[0]["top"] == answers[1]["top"]  # the GIF's answer is its first frame's
    assert main(["explain", str(run), str(gif), "--out", str(tmp_path / "maps")]) == 0
    assert "walk.gif holds 3 frames" in capsys.readouterr().err


def test_many_files_of_many_frames_are_named_in_one_sentence():
    note = frames_note([("a.gif", 3), ("b.png", 1), ("c.tif", 2), ("d.gif", 4), ("e.gif", 5)])
    assert note.startswith("4 files hold more than one frame (an animation or pages; frames: ")
    assert "a.gif 3, c.tif 2, d.gif 4 and 1 more)" in note and "b.png" not in note
    assert frames_note([("a.png", 1)]) == ""
