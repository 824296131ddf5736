"""Image folders written by the tests with Pillow (PNG, JPEG, BMP, WebP, TIFF, GIF; L, RGB,
RGBA), checked against Pillow's own conversions and pixel values chosen so the resize policy is
visible, and what `cnnlab data` says of them (skipped files, conversions, untested classes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.cli.train import print_data_notes
from cnnlab.data import image_folder, load_dataset, load_splits
from cnnlab.errors import DataError


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode).save(path)
    return path


def gray(value, h=8, w=8):
    return np.full((h, w), value, np.uint8)


def rgb(color, h=8, w=8):
    return np.broadcast_to(np.array(color, np.uint8), (h, w, 3)).copy()


@pytest.fixture
def mixed(tmp_path):
    """Three classes in four formats and three modes, plus a corrupt and a truncated file."""
    root = tmp_path / "imgs"
    save(root / "cat" / "a.png", gray(10))
    save(root / "cat" / "b.bmp", rgb((200, 100, 50)))
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 255, 0
    rgba[:4, :, 3] = 255  # top half opaque white, bottom half fully transparent
    save(root / "dog" / "c.png", rgba, "RGBA")
    save(root / "dog" / "d.jpg", rgb((0, 0, 255)))
    save(root / "emu" / "e.webp", gray(77))
    (root / "emu" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    good = (root / "cat" / "a.png").read_bytes()
    (root / "emu" / "cut.png").write_bytes(good[: len(good) // 2])
    (root / "emu" / "notes.txt").write_text("ignored: not an image extension")
    return root


def test_mixed_folder_reads_converts_and_reports(mixed):
    ds = image_folder(mixed)
    assert ds.classes == ("cat", "dog", "emu")
    assert ds.images.shape == (5, 3, 8, 8)  # one RGB image → 3 channels for all
    assert ds.labels.tolist() == [0, 0, 1, 1, 2]
    assert {Path(p).name for p, _ in ds.skipped} == {"broken.png", "cut.png"}
    converted = dict((Path(p).name, why) for p, why in ds.converted)
    # WebP stores gray as RGB, so e.webp needs no conversion
    assert converted == {"a.png": "L->RGB", "c.png": "RGBA->RGB"}
    assert (ds.images[0] == 10).all()  # gray repeated into 3 channels
    assert (ds.images[4].int() - 77).abs().max() <= 2  # lossy WebP
    assert ds.images[1, :, 0, 0].tolist() == [200, 100, 50]  # BMP is lossless


def test_alpha_is_composited_over_black(mixed):
    ds = image_folder(mixed)
    rgba = ds.images[2]  # dog/c.png
    assert (rgba[:, :4] == 255).all() and (rgba[:, 4:] == 0).all()


def test_channels_1_is_pillow_luma(mixed):
    ds = image_folder(mixed, channels=1)
    assert ds.images.shape == (5, 1, 8, 8)
    expected = np.asarray(Image.fromarray(rgb((200, 100, 50))).convert("L"))
    assert np.array_equal(ds.images[1, 0].numpy(), expected)


def test_strict_fails_on_the_first_corrupt_file(mixed):
    with pytest.raises(DataError, match="corrupt or unreadable image") as e:
        image_folder(mixed, strict=True)
    assert str(mixed / "emu") in str(e.value)


def test_all_gray_folder_gives_one_channel(tmp_path):
    save(tmp_path / "a" / "1.png", gray(1))
    save(tmp_path / "b" / "2.jpg", gray(200))
    ds = load_dataset(tmp_path, split=None)
    assert ds.images.shape == (2, 1, 8, 8) and ds.converted == ()


def test_empty_folder_and_empty_class_are_errors(tmp_path):
    with pytest.raises(DataError, match="no class sub-folders"):
        image_folder(tmp_path)
    save(tmp_path / "a" / "1.png", gray(1))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="empty class") as e:
        image_folder(tmp_path)
    assert str(tmp_path / "b") in str(e.value)


def test_class_with_only_corrupt_images_is_empty(tmp_path):
    save(tmp_path / "a" / "1.png", gray(1))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="empty class") as e:
        image_folder(tmp_path)
    assert str(tmp_path / "b") in str(e.value) and "x.jpg" in str(e.value)


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        image_folder(tmp_path / "nope")


def test_different_sizes_need_a_size(tmp_path):
    save(tmp_path / "a" / "1.png", gray(1, 8, 8))
    save(tmp_path / "a" / "2.png", gray(1, 10, 12))
    with pytest.raises(DataError, match=r"give a size.*cnnlab data DIR --size"):
        image_folder(tmp_path)
    ds = image_folder(tmp_path, size=6)
    assert ds.images.shape == (2, 1, 6, 6)


def test_resize_keeps_aspect_and_center_crops(tmp_path):
    # A 20×80 image: bright outer quarters, gray 100 in the middle. Covering 10×10 scales by
    # 1/2 (→ 10×40) and keeps the middle columns 30..49 of the original: only gray survives.
    # A plain resize would squeeze the bright borders in.
    wide = np.full((20, 80), 255, np.uint8)
    wide[:, 20:60] = 100
    save(tmp_path / "a" / "wide.png", wide)
    ds = image_folder(tmp_path, size=10)
    assert ds.images.shape == (1, 1, 10, 10)
    assert (ds.images - 100).abs().max() <= 1
    assert ds.converted[0][1] == "20x80->10x10"


def test_rectangular_size(tmp_path):
    save(tmp_path / "a" / "1.png", rgb((1, 2, 3), 30, 30))
    assert image_folder(tmp_path, size=(12, 20)).images.shape == (1, 3, 12, 20)


def test_train_test_subfolders(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("x", "y"):
            for i in range(n):
                save(tmp_path / split / cls / f"{i}.png", gray(i))
    save(tmp_path / "test" / "y" / "extra.png", gray(9))
    train = load_dataset(tmp_path, "train")
    test = load_dataset(tmp_path, "test")
    assert (len(train), len(test)) == (6, 5)
    assert train.classes == test.classes == ("x", "y")


def test_test_subfolder_with_only_some_classes_keeps_train_numbering(tmp_path):
    for cls in ("x", "y"):
        save(tmp_path / "train" / cls / "0.png", gray(0))
    save(tmp_path / "test" / "y" / "0.png", gray(0))
    test = load_dataset(tmp_path, "test")
    assert test.classes == ("x", "y") and test.labels.tolist() == [1]


def test_holdout_split_is_disjoint_stratified_and_fixed(tmp_path):
    for cls in ("x", "y"):
        for i in range(10):
            save(tmp_path / cls / f"{i}.png", gray(i * 10 + (cls == "y")))
    train, test = load_dataset(tmp_path, "train"), load_dataset(tmp_path, "test")
    assert (len(train), len(test)) == (16, 4) and test.class_counts() == [2, 2]
    pixels = lambda ds: {int(v) for v in ds.images[:, 0, 0, 0]}  # noqa: E731 - unique per file
    assert pixels(train).isdisjoint(pixels(test))
    assert len(pixels(train) | pixels(test)) == 20
    assert pixels(load_dataset(tmp_path, "test")) == pixels(test)


def test_unknown_split_and_bad_channels(tmp_path):
    save(tmp_path / "a" / "1.png", gray(1))
    with pytest.raises(DataError, match="unknown split"):
        image_folder(tmp_path, split="val")
    with pytest.raises(DataError, match="channels must be 1 or 3"):
        image_folder(tmp_path, channels=2)


def test_unknown_dataset_name():
    with pytest.raises(DataError, match="unknown data set 'imagenet'"):
        load_dataset("imagenet")


def test_train_without_test_folder_is_ambiguous(tmp_path):
    save(tmp_path / "train" / "a" / "1.png", gray(1))
    with pytest.raises(DataError, match="has train/ but no test/"):
        load_dataset(tmp_path, "train")


def test_sixteen_bit_gray_is_scaled_to_eight_bits(tmp_path):
    deep = np.array([[0, 257 * 128], [65535, 257]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "a.png")  # a 16-bit grayscale PNG
    (tmp_path / "k").mkdir()
    (tmp_path / "a.png").rename(tmp_path / "k" / "a.png")
    ds = image_folder(tmp_path)
    assert ds.images.shape == (1, 1, 2, 2)
    assert ds.images[0, 0].tolist() == [[0, 128], [255, 1]]


def test_exif_orientation_is_applied(tmp_path):
    tall = np.zeros((6, 4), np.uint8)
    tall[0, :] = 255  # bright top row
    img = Image.fromarray(tall)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: the viewer rotates 90° clockwise
    (tmp_path / "k").mkdir()
    img.save(tmp_path / "k" / "r.png", exif=exif)
    ds = image_folder(tmp_path)
    assert ds.images.shape == (1, 1, 4, 6)  # upright: 4 high, 6 wide
    assert (ds.images[0, 0, :, -1] == 255).all()  # the old top row is now the right column


# One class folder whose images are in sub-folders (`one/cat/2023`, `one/cat/2024`) may be a
# wrapper of the classes or one class filed by date: the one-line error says both, naming the
# sub-folders; it advised only "give one/cat as the data", which makes 2023 and 2024 the
# classes. The sub-folders come from the listing already made, not another walk.


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)


def test_dated_sub_folders_of_one_class_get_both_possibilities(tmp_path, monkeypatch):
    for year in ("2023", "2024"):
        for i in range(3):
            _png(tmp_path / "one" / "cat" / year / f"{i}.png")
    (tmp_path / "one" / "cat" / "empty").mkdir()  # no image: not a possible class
    iterdir = Path.iterdir

    def no_walk_below_the_class(self):
        assert self != tmp_path / "one" / "cat", "the class folder was listed again"
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", no_walk_below_the_class)
    with pytest.raises(DataError) as error:
        load_splits(tmp_path / "one")
    message = str(error.value)
    assert "\n" not in message and "only one class ('cat')" in message
    assert "give that directory as the data if they (2023, 2024) are the classes" in message
    assert f"if 'cat' is one class, add a sub-folder of images to {tmp_path / 'one'}" in message


# `cnnlab train` counts a folder's conversions by kind, as `cnnlab data` does: it showed the
# first three distinct changes, mostly sizes, and hid the rest behind '...' ("converted 58
# images (50x50->28x28, CMYK->L, 70x50->28x28, ...)": RGB->L unsaid). Truth: Pillow's mode and
# size of each file written.


def test_every_kind_of_conversion_is_counted(tmp_path, capsys):
    rng = np.random.default_rng(0)
    files = {  # name: (mode, (W, H))
        "rgb50": ("RGB", (50, 50)), "rgb70": ("RGB", (70, 50)), "rgb28": ("RGB", (28, 28)),
        "cmyk": ("CMYK", (70, 50)), "bilevel": ("1", (28, 28)), "gray": ("L", (28, 28)),
        "gray60": ("L", (60, 28)),
    }  # fmt: skip
    for i, (name, (mode, size)) in enumerate(files.items()):
        (tmp_path / f"c{i % 2}").mkdir(exist_ok=True)
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        ext = "jpg" if mode == "CMYK" else "png"  # PNG holds no CMYK
        Image.fromarray(pixels).convert(mode).save(tmp_path / f"c{i % 2}" / f"{name}.{ext}")
    modes = [Image.open(p).mode for p in sorted(tmp_path.rglob("*.*"))]
    sizes = [Image.open(p).size for p in sorted(tmp_path.rglob("*.*"))]
    data = image_folder(tmp_path, channels=1, size=28)
    print_data_notes({"skipped": [], "converted": data.converted})
    line = capsys.readouterr().out.strip()
    want = {f"{modes.count(m)} {m}->L" for m in ("RGB", "CMYK", "1")}
    want.add(f"{sum(s != (28, 28) for s in sizes)} resized")
    changed = sum(m != "L" or s != (28, 28) for m, s in zip(modes, sizes, strict=True))
    assert line.startswith(f"converted {changed} images to the model's input (")
    assert set(line.split(" (", 1)[1].rstrip(")").split(", ")) == want, line


# Every format Pillow writes and reads back (TIFF, GIF, JFIF) is an image of its class, and a
# photo format Pillow cannot decode (HEIC) is named as skipped, never dropped unseen.


@pytest.fixture
def scans(tmp_path):
    root = tmp_path / "scans"
    for cls, color in (("a", (200, 0, 0)), ("b", (0, 200, 0))):
        for name in ("x.png", "x.tif", "x.TIFF", "x.gif", "x.jfif"):
            save(root / cls / name, rgb(color))
    (root / "a" / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    (root / "b" / "notes.txt").write_text("not an image")
    return root


def test_every_format_pillow_reads_back_is_loaded(scans):
    readable = [p for p in sorted(scans.rglob("*")) if p.is_file()]
    readable = [p for p in readable if _pillow_reads(p)]
    ds = image_folder(scans)
    assert len(ds) == len(readable) == 10  # 5 formats x 2 classes
    for label, color in ((0, (200, 0, 0)), (1, (0, 200, 0))):
        red, green = ds.images[ds.labels == label][:, :2, 4, 4].float().mean(0).tolist()
        assert abs(red - color[0]) < 8 and abs(green - color[1]) < 8


def test_an_undecodable_photo_format_is_skipped_by_name(scans, capsys):
    ds = image_folder(scans)
    [(path, reason)] = ds.skipped  # the .txt is not an image file: ignored
    assert path.endswith("IMG_0001.HEIC") and "HEIC" in reason and "PNG or JPEG" in reason
    assert not _pillow_reads(Path(path))
    assert main(["data", str(scans), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["train"]["skipped"]
    assert [Path(p).name for p, _ in shown] == ["IMG_0001.HEIC"]


def _pillow_reads(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.load()
        return True
    except Exception:
        return False


# `cnnlab data DIR` names a class that has no image in the test split: a folder's class of one
# image (20 % of 1 rounds to none) is trained on but never measured.


def _folder(root: Path, counts: dict[str, int]) -> Path:
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8), 20 * i, np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_a_class_left_out_of_the_holdout_is_named(tmp_path, capsys):
    root = _folder(tmp_path / "imgs", {"cat": 10, "dog": 10, "fish": 1})
    assert round(0.2 * 1) == 0 and round(0.2 * 10) == 2  # what a 20 % hold-out takes
    assert main(["data", str(root)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert "no test image of fish:" in out
    assert "no test image of cat" not in out and "dog:" not in out


def test_no_note_when_every_class_is_tested(tmp_path, capsys):
    root = _folder(tmp_path / "imgs", {"cat": 5, "dog": 5})
    assert main(["data", str(root)]) == 0
    assert "no test image" not in capsys.readouterr().out


def test_the_conversions_are_counted_by_kind(tmp_path, capsys):
    """A colour folder read as gray says how many images lost their colour (Pillow's modes
    of the files written), not only that some were converted."""
    root = tmp_path / "imgs"
    colour = np.zeros((6, 6, 4), np.uint8)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(colour[..., :3]).save(root / cls / f"rgb{i}.png")
        Image.fromarray(colour).save(root / cls / "alpha.png")
        Image.fromarray(colour[..., 0]).save(root / cls / "gray.png")
    modes = [Image.open(p).mode for p in sorted(root.rglob("*.png"))]
    assert sorted(set(modes)) == ["L", "RGB", "RGBA"]
    assert main(["data", str(root), "--channels", "1", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    together = {}
    for split in ("train", "test"):
        for kind, n in info[split]["conversions"].items():
            together[kind] = together.get(kind, 0) + n
    assert together == {"RGB->L": modes.count("RGB"), "RGBA->L": modes.count("RGBA")}
    assert main(["data", str(root), "--channels", "1", "--size", "4"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "converted (train):" in out and "RGB->L" in out and "resized" in out


def test_a_class_missing_from_a_test_folder_is_told_where_to_add_it(tmp_path, capsys):
    root = tmp_path / "imgs"
    _folder(root / "train", {"cat": 3, "dog": 3})
    _folder(root / "test", {"cat": 2})
    assert sorted(p.name for p in (root / "test").iterdir()) == ["cat"]
    assert main(["data", str(root)]) == 0
    out = "".join(capsys.readouterr().out.split())  # rich wraps lines, even inside a path
    said = f"no test image of dog: no accuracy is measured for it; add its images to {root}/test"
    assert "".join(said.split()) + "/<class>/" in out and "hold-out" not in out


@pytest.mark.parametrize("layout", ["", "train"])
def test_data_names_images_beside_the_class_folders(tmp_path, capsys, monkeypatch, layout):
    """Photos put in DIR itself (or DIR/train/) beside the class folders are in no class and
    were passed over without a word; `cnnlab data DIR` names them."""
    for split in ("train", "test") if layout else ("",):
        for c in ("a", "b"):
            for i in range(5):
                save(tmp_path / split / c / f"{i}.png", gray(40 * i))
    save(tmp_path / layout / "stray.png", gray(9))
    save(tmp_path / layout / "stray2.png", gray(9))
    (tmp_path / "notes.txt").write_text("not an image")
    monkeypatch.setenv("COLUMNS", "300")  # the path on one line
    assert main(["data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "not read" in out and "stray.png and 1 more" in out, out
    assert "notes.txt" not in out
    # a phone's photo.heic beside them is named too, as it is inside a class folder
    (tmp_path / layout / "photo.heic").write_bytes(b"\0" * 16)
    assert main(["data", str(tmp_path)]) == 0
    assert "photo.heic and 2 more" in capsys.readouterr().out


def test_train_notes_images_beside_the_class_folders_and_a_set_name_is_no_folder(
    tmp_path, capsys, monkeypatch
):
    """`train --data DIR` went on without DIR/stray.png without a word; `data digits` beside
    a folder ./digits reads the set, so the folder's files are no note of it."""
    for c in ("a", "b"):
        for i in range(5):
            save(tmp_path / "digits" / c / f"{i}.png", gray(40 * i))
    save(tmp_path / "digits" / "stray.png", gray(9))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["data", "digits"]) == 0
    assert "stray" not in capsys.readouterr().out
    spec = tmp_path / "net.yaml"
    spec.write_text("input: [1, 8, 8]\nlayers: [flatten, {linear: 2}]\n")
    args = ["--epochs", "1", "--batch-size", "4", "--quiet", "--out", str(tmp_path / "run")]
    assert main(["train", str(spec), "--data", "./digits", *args]) == 0
    err = capsys.readouterr().err
    assert "note: digits/stray.png, beside the class folders, is read by no class" in err, err
