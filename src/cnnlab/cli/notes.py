"""The notes a command prints on stderr when it changed an image file to the run's input."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from cnnlab.data.folder import shown
from cnnlab.data.image import mode_change
from cnnlab.data.notes import channel_note as file_note


def channel_note(paths: Sequence[str | Path], channels: int) -> str:
    """`data.notes.channel_note` of image files (the explorer says it of an upload)."""
    return file_note([(shown(Path(p)), mode_change(p, channels)) for p in paths], channels)


def print_channel_note(paths: Sequence[str | Path], channels: int) -> None:
    note = channel_note(paths, channels)
    if note:
        print(f"note: {note}", file=sys.stderr)
