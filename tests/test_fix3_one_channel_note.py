"""predict's note on stderr and the explorer's note beside an upload's answer come from one
function (`data.notes.channel_note`), in the same words, for the same image: they were two
copies of the filter, the wording and the alpha test, and had drifted apart ("1 image was
converted ... (a.png RGB->L)" against "a.png was converted ... (RGB->L)")."""

import io

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli.notes import channel_note
from cnnlab.explorer.upload import colour_note


@pytest.mark.parametrize(
    ("shape", "channels"),
    [((4, 4, 3), 1), ((4, 4, 4), 1), ((4, 4, 4), 3), ((4, 4, 3), 3), ((4, 4), 3)],
)
def test_the_cli_and_the_explorer_say_the_same(tmp_path, monkeypatch, shape, channels):
    monkeypatch.chdir(tmp_path)  # the CLI names a file as given: a.png
    buffer = io.BytesIO()
    Image.fromarray(np.zeros(shape, np.uint8)).save(buffer, format="PNG")
    (tmp_path / "a.png").write_bytes(buffer.getvalue())
    said = channel_note(["a.png"], channels)
    assert colour_note(buffer.getvalue(), "a.png", channels) == said
    assert bool(said) == (len(shape) == 3 and (channels == 1 or shape[2] == 4))
