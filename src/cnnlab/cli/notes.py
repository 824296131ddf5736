"""The notes a command prints on stderr: an image file changed to the run's input, a data
name that is also a folder here."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

# cnnlab.data is imported in the functions: the commands import this module while the parser
# is built, and cnnlab.data brings torch (seconds; `cnnlab --help` needs none of it).


def channel_note(paths: Sequence[str | Path], channels: int) -> str:
    """`data.notes.channel_note` of image files (the explorer says it of an upload)."""
    from cnnlab.data.folder import shown
    from cnnlab.data.image import mode_change
    from cnnlab.data.notes import channel_note as file_note

    return file_note([(shown(Path(p)), mode_change(p, channels)) for p in paths], channels)


def print_channel_note(paths: Sequence[str | Path], channels: int) -> None:
    note = channel_note(paths, channels)
    if note:
        print(f"note: {note}", file=sys.stderr)


def print_frames_note(paths: Sequence[str | Path]) -> None:
    """`data.notes.frames_note` of image files: an animated GIF or a multi-page TIFF is read
    at its first frame, which the answer is about."""
    from cnnlab.data.folder import shown
    from cnnlab.data.image import frame_count
    from cnnlab.data.notes import frames_note

    note = frames_note([(shown(Path(p)), frame_count(p)) for p in paths])
    if note:
        print(f"note: {note}", file=sys.stderr)


def print_name_note(data: str | None) -> None:
    """A data name that is also a directory here (`--data shapes` beside a folder ./shapes)
    reads the named set, the name winning (`data.sets.dataset_name`): say so, and how to
    read the folder, before a wrong channel count or class list says it less plainly."""
    from cnnlab.data.sets import dataset_name

    if data is None or dataset_name(data) is None or not Path(data).expanduser().is_dir():
        return
    print(
        f"note: --data {data} is cnnlab's {dataset_name(data)} data set, not the folder "
        f"{data}/ here; for the folder give --data ./{data}",
        file=sys.stderr,
    )


def print_stray_note(data: str | None) -> None:
    """Image files beside the class folders of --data DIR are read by no class (`cnnlab data`
    names them too): `train --data DIR` went on without them, without a word."""
    note = stray_note(data, "is read by no class")
    if note:
        print(f"note: {note}", file=sys.stderr)


def stray_note(name: str | None, said: str) -> str | None:
    """'DIR/x.png and 2 more, beside the class folders, {said}: move each into its class's
    folder, DIR/<class>/' of `stray_images(name)`, or None when there is none."""
    from cnnlab.data.folder import shown

    stray = stray_images(name) if name is not None else []
    if not stray:
        return None
    more = f" and {len(stray) - 1} more" if len(stray) > 1 else ""
    return (
        f"{shown(stray[0])}{more}, beside the class folders, {said}: move each into its "
        f"class's folder, {shown(stray[0].parent)}/<class>/"
    )


def stray_images(name: str) -> list[Path]:
    """Image files lying beside the class folders of the folder `name` (`folder.stray_images`:
    DIR/x.png or DIR/x.heic, and DIR/train/x.png in a train/test layout): they are in no
    class, and no split reads them. [] for a data set's name (`digits` beside ./digits)."""
    from cnnlab.data.folder import stray_images as strays
    from cnnlab.data.sets import dataset_name

    if dataset_name(name) is not None:
        return []
    return strays(name)
