"""The notes a command prints on stderr when it changed an image file to the run's input."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from cnnlab.data.folder import shown
from cnnlab.data.image import mode_change


def channel_note(paths: Sequence[str | Path], channels: int) -> str:
    """One sentence naming the files whose pixel format is not the run's input (a colour
    photo given to a grayscale run is read as gray; alpha is composited over black), ""
    when none: the answer is about the converted image, not the colours the user sees."""
    changed = [(shown(Path(p)), c) for p in paths if (c := mode_change(p, channels))]
    # gray into RGB (or bilevel into gray) repeats the same values: nothing to say
    changed = [(name, c) for name, c in changed if c.split("->")[0] not in ("L", "1")]
    if not changed:
        return ""
    what = "1-channel gray" if channels == 1 else "3-channel RGB"
    listed = ", ".join(f"{name} {change}" for name, change in changed[:3])
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    alpha = any(change.split("->")[0].upper().endswith("A") for _, change in changed)
    return (
        f"{'1 image was' if len(changed) == 1 else f'{len(changed)} images were'} converted "
        f"to {what}, the run's input ({listed}{more})"
        + ("; transparent pixels are black" if alpha else "")
    )


def print_channel_note(paths: Sequence[str | Path], channels: int) -> None:
    note = channel_note(paths, channels)
    if note:
        print(f"note: {note}", file=sys.stderr)
