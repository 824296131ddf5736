"""The sentences said when reading image files changed what the run sees: a pixel format
not the run's input, a file of many frames read at its first. predict and explain say them
on stderr, the explorer beside an upload's answer, in the same words (the answer is about
the image the model saw, not the file the user sees)."""

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


def frames_note(files: Sequence[tuple[str, int]]) -> str:
    """One sentence naming the files of more than one frame (an animated GIF, WebP or PNG, a
    multi-page TIFF), from `(name, data.image.frame_count(...))` pairs: every reader takes
    their first frame only; "" when none has more."""
    many = [(name, n) for name, n in files if n > 1]
    if not many:
        return ""
    fix = "to see another, save it as an image of its own"
    if len(many) == 1:
        ((name, n),) = many
        return (
            f"{name} holds {n} frames (an animation or pages); only its first frame is read: " + fix
        )
    listed = ", ".join(f"{name} {n}" for name, n in many[:3])
    more = f" and {len(many) - 3} more" if len(many) > 3 else ""
    return (
        f"{len(many)} files hold more than one frame (an animation or pages; frames: {listed}"
        f"{more}); only each one's first frame is read: {fix}"
    )
