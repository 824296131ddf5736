"""The one sentence said when reading image files changed their pixel format for a run's
input: predict and explain say it on stderr, the explorer beside an upload's answer, in the
same words (the answer is about the converted image, not the colours the user sees)."""

from __future__ import annotations

from collections.abc import Sequence


def channel_note(changes: Sequence[tuple[str, str]], channels: int) -> str:
    """One sentence naming the files whose pixel format is not the run's input, from
    `(name, data.image.mode_change(...))` pairs: a colour photo given to a grayscale run is
    read as gray, alpha is composited over black; "" when none changed."""
    # gray into RGB (or bilevel into gray) repeats the same values: nothing to say
    changed = [(name, c) for name, c in changes if c and c.split("->")[0] not in ("L", "1")]
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
