"""What an F.pad call adds around a map: its (top, bottom, left, right) positions, and
whether they are zeros (the floor and even-kernel lints' real map inside them). Pure readers
of the call's arguments, for `roles.Roles._pad_tag`."""

from __future__ import annotations

from cnnlab.design.summary import calls as C


def spatial_pad(args: tuple, kwargs: dict) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) positions an F.pad call adds around the last two axes
    (negative: crops), whatever its mode and value; None for a pad torch would refuse to read
    as pairs (an odd length) or one that is not integers."""
    pad = C.arg(args, kwargs, 1, "pad", ())
    try:
        pad = [int(p) for p in pad]
    except (TypeError, ValueError):
        return None
    if len(pad) % 2 or not pad:
        return None
    left, right, top, bottom = (*pad, 0, 0)[:4]  # F.pad order: last axis (W) first
    return top, bottom, left, right


def zero_pad(
    pad: tuple[int, int, int, int] | None, args: tuple, kwargs: dict
) -> tuple[int, int, int, int] | None:
    """`pad`, an F.pad call's (top, bottom, left, right) as `spatial_pad` reads it, where the
    call puts zeros around the map and crops none of it; None for any other padding (reflect,
    replicate, a non-zero value, a crop). Pairs for axes before the map (channels) change no
    position of it."""
    mode = C.arg(args, kwargs, 2, "mode", "constant")
    value = C.arg(args, kwargs, 3, "value", None)
    if pad is None or mode != "constant" or value not in (None, 0, 0.0) or min(pad) < 0:
        return None
    return pad
