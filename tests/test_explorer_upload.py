"""The explorer's upload: it reads every format an image folder, predict and explain read, and
converts an upload whose pixel format is not the run's, saying so as it says an upload was
resized and as predict says it of a file (`data.image.mode_change`, one note for both): a
colour photo on a grey model is read as luma, alpha composited over black; a grey image on an
RGB model repeats its values, nothing to say. Files too large, or too thin to resize, are
refused from their header. Truths: Pillow's own formats, modes and decoding, the runs' input
shapes, and the pixels the explorer answered for against Pillow's convert("L") / ("RGB")."""

from __future__ import annotations

import io
import tempfile

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from cnnlab.cli.notes import channel_note
from cnnlab.data.image import IMAGE_EXTENSIONS, mode_change, read_image
from cnnlab.explorer import create_app
from cnnlab.explorer.upload import UploadError, colour_note, read_upload
from explorer_runs import SPEC, shapes_run


@pytest.fixture(scope="module", params=[1, 3], ids=["grey model", "RGB model"])
def client(request, tmp_path_factory):
    """The explorer on a grey and on an RGB run of the shapes (explorer_runs.py)."""
    spec = {**SPEC, "input": [request.param, 28, 28]}
    run = shapes_run(tmp_path_factory.mktemp("upload"), 6, spec, batch_size=4, val_fraction=0.2)
    return TestClient(create_app(run)), request.param


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def shown_pixels(answer: dict) -> np.ndarray:
    """The input the explorer answered for, from its PNG data URL: (H, W) or (H, W, 3)."""
    import base64

    data = base64.b64decode(answer["input"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)))


def test_the_answer_says_a_colour_was_converted(client):
    client, channels = client
    gen = np.random.default_rng(0)
    colour = gen.integers(0, 256, (28, 28, 3), dtype=np.uint8)
    grey = gen.integers(0, 256, (28, 28), dtype=np.uint8)
    for array, name in ((colour, "colour.png"), (grey, "grey.png")):
        r = client.post("/api/predict", files={"image": (name, png(array), "image/png")})
        assert r.status_code == 200, r.text
        note = r.json().get("note", "")
        converted = array.ndim == 3 and channels == 1  # grey into RGB: the same values
        assert (f"({name} RGB->L)" in note) == converted, (channels, name, note)
        mode = "RGB" if channels == 3 else "L"
        truth = np.asarray(Image.fromarray(array).convert(mode))
        assert np.array_equal(shown_pixels(r.json()), truth)


def test_colour_note_by_mode():
    rgb = png(np.zeros((4, 4, 3), np.uint8))
    assert colour_note(rgb, "a.png", 1) == (
        "1 image was converted to 1-channel gray, the run's input (a.png RGB->L)"
    )
    assert colour_note(rgb, "a.png", 3) == ""
    rgba = png(np.zeros((4, 4, 4), np.uint8))
    assert colour_note(rgba, "t.png", 3).endswith("(t.png RGBA->RGB); transparent pixels are black")
    assert colour_note(png(np.zeros((4, 4), np.uint8)), "g.png", 3) == ""


def test_a_file_over_the_limit_is_not_said_to_be_the_limit():
    """The route reads MAX_BYTES + 1 bytes of a larger file (a chunked upload has no
    Content-Length to refuse first): a 20 MiB file was "10.0 MiB; ... up to 10 MiB"."""
    from cnnlab.explorer.upload import MAX_BYTES, UploadError, check_header

    with pytest.raises(UploadError) as refused:
        check_header(b"\0" * (MAX_BYTES + 1), "big.png")
    assert refused.value.status == 413
    assert "over 10 MiB" in str(refused.value) and "10.0 MiB" not in str(refused.value)


def test_a_thin_image_that_would_resize_to_gigabytes_is_refused_before_decoding(monkeypatch):
    """A 1×400,000 PNG (467 bytes) passes the pixel guard (0.4 M pixels), but covering 28×28
    resizes it to 28×11,200,000 first: 1.9 GB and 3 s of one request. Truth: the cover
    formula (scale max(28/1, 28/400,000) = 28)."""
    from cnnlab.explorer import upload
    from cnnlab.explorer.upload import UploadError, read_upload

    real = upload.read_for_run
    decoded = []
    monkeypatch.setattr(upload, "read_for_run", lambda *a: decoded.append(a) or real(*a))
    array = np.zeros((1, 400_000), np.uint8)
    with pytest.raises(UploadError) as refused:
        read_upload(png(array), "thin.png", (1, 28, 28))
    assert refused.value.status == 413 and "28×11,200,000" in str(refused.value)
    assert not decoded  # refused from the header: nothing decoded, nothing resized
    pixels, size = read_upload(png(np.zeros((40, 400), np.uint8)), "wide.png", (1, 28, 28))
    assert pixels.shape == (1, 1, 28, 28) and size == (40, 400)  # 1:10 is read as before


# The explorer's upload reads every format an image folder, predict and explain read: it
# accepted PNG, JPEG, BMP and WebP only, so scan.tif was refused though `cnnlab train` on a
# folder of it and `cnnlab predict RUN scan.tif` read it. Truth: Pillow's own format of each
# extension (`Image.registered_extensions`) and its decoding of the saved bytes.


@pytest.mark.parametrize("extension", IMAGE_EXTENSIONS)
def test_an_upload_in_any_format_a_folder_reads_is_read_as_predict_reads_it(tmp_path, extension):
    fmt = Image.registered_extensions()[extension]
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / f"scan{extension}"
    Image.fromarray(pixels).save(path, format=fmt)
    got, size = read_upload(path.read_bytes(), path.name, (3, 28, 28))
    assert size == (30, 40)
    assert torch.equal(got[0], read_image(path, 3, (28, 28)))


def test_a_camera_jpeg_with_a_second_picture_is_read():
    """Pillow opens a JPEG holding MP (multi-picture) data as format MPO: a .jpg to a folder."""
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("RGB", (40, 30), (0, 0, 0))]
    frames[0].save(buffer, format="MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    got, size = read_upload(buffer.getvalue(), "camera.jpg", (3, 28, 28))
    assert size == (30, 40) and got[0, 0].float().mean() > 150  # the first picture, red


def test_a_refusal_names_the_formats_read():
    with pytest.raises(UploadError) as refused:
        read_upload(b"plain text, not an image\n", "notes.txt", (1, 28, 28))
    for name in ("PNG", "JPEG", "WebP", "TIFF", "GIF"):
        assert name in str(refused.value)
    assert "MPO" not in str(refused.value)


# The explorer's note on an upload's pixel format is read from its bytes in memory: the
# upload was written to a temporary file a second time for it. Truth: Pillow's mode of the
# same file on disk.


def test_the_upload_note_needs_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save(path)
    data = path.read_bytes()
    assert Image.open(path).mode == "RGBA"
    assert mode_change(io.BytesIO(data), 1) == mode_change(path, 1) == "RGBA->L"

    def no_temporary_file(*args, **kwargs):
        raise AssertionError("the note wrote the upload to a file")

    monkeypatch.setattr(tempfile, "mkstemp", no_temporary_file)
    note = colour_note(data, "a.png", 1)
    assert "a.png RGBA->L" in note and "transparent pixels are black" in note


@pytest.mark.parametrize("channels", [1, 3])
def test_a_gray_upload_needs_no_note(channels):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(buffer, "PNG")
    assert colour_note(buffer.getvalue(), "g.png", channels) == ""


# predict's note on stderr and the explorer's note beside an upload's answer come from one
# function (`data.notes.channel_note`), in the same words, for the same image: they were two
# copies of the filter, the wording and the alpha test, and had drifted apart ("1 image was
# converted ... (a.png RGB->L)" against "a.png was converted ... (RGB->L)").


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
