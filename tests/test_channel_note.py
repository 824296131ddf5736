"""A colour photo given to a grayscale run is read as Pillow's luma, and predict says so on
stderr with the file's own mode (from Pillow), as it says a file was resized: the answer is
about the gray image, not the colours the user sees."""

import numpy as np
from PIL import Image

from cnnlab.cli import main
from cnnlab.cli.notes import channel_note
from cnnlab.data import read_image
from tiny_nets import imported_run

NET = """
from torch import nn
def make():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))
"""


def _files(tmp_path):
    colours = np.zeros((8, 8, 4), np.uint8)
    colours[..., 0], colours[..., 1], colours[..., 3] = 250, 30, 255
    paths = {
        "rgb": tmp_path / "rgb.png",
        "rgba": tmp_path / "rgba.png",
        "gray": tmp_path / "gray.png",
    }
    Image.fromarray(colours[..., :3]).save(paths["rgb"])
    see_through = colours.copy()
    see_through[0, 0, 3] = 0  # one transparent pixel: an opaque RGBA is read as its colours
    Image.fromarray(see_through).save(paths["rgba"])
    Image.fromarray(colours[..., 1]).save(paths["gray"])
    return paths


def test_colour_files_are_named_gray_ones_are_not(tmp_path):
    paths = _files(tmp_path)
    modes = {k: Image.open(p).mode for k, p in paths.items()}
    assert modes == {"rgb": "RGB", "rgba": "RGBA", "gray": "L"}
    note = channel_note(list(paths.values()), 1)
    assert "2 images were converted to 1-channel gray" in note
    assert "rgb.png RGB->L" in note and "rgba.png RGBA->L" in note and "gray.png" not in note
    assert "transparent pixels are black" in note
    assert channel_note([paths["gray"]], 3) == ""  # gray repeated into RGB loses nothing
    assert channel_note([paths["rgb"]], 3) == ""
    # what the model reads is Pillow's luma of the colours
    luma = np.asarray(Image.open(paths["rgb"]).convert("L"))
    assert (read_image(paths["rgb"], 1).numpy()[0] == luma).all()


def test_predict_prints_the_note(tmp_path, capsys):
    run = imported_run(tmp_path, NET, data="digits")
    paths = _files(tmp_path)
    capsys.readouterr()
    assert main(["predict", str(run), str(paths["rgb"]), str(paths["gray"])]) == 0
    err = capsys.readouterr().err
    assert "note: 1 image was converted to 1-channel gray" in err and "rgb.png RGB->L" in err


def test_a_palette_is_named_by_the_colours_it_holds(tmp_path):
    """A GIF is a palette image: for an RGB run it is its colours (nothing to say), for a
    gray run colour made gray; a palette with a transparent index has alpha (Pillow's
    `info["transparency"]`)."""
    colours = np.zeros((8, 8, 3), np.uint8)
    colours[..., 0] = 250
    Image.fromarray(colours).convert("P").save(tmp_path / "a.gif")
    assert Image.open(tmp_path / "a.gif").mode == "P"
    assert channel_note([tmp_path / "a.gif"], 3) == ""
    assert "a.gif RGB->L" in channel_note([tmp_path / "a.gif"], 1)
    palette = Image.fromarray(colours).convert("P")
    palette.save(tmp_path / "t.png", transparency=palette.getpixel((0, 0)))  # a used index
    assert "transparency" in Image.open(tmp_path / "t.png").info
    assert "t.png RGBA->RGB" in channel_note([tmp_path / "t.png"], 3)
