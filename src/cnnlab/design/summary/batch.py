"""Where the batch is in a row's output. A row shows one image's output: torch's shape for a
batch of one without the batch axis. That is axis 0 for an image layout, (B, C, H, W), and a
batch_first sequence, (B, T, F); it is not in torch's sequence-first layout, (T, B, F) (an
nn.LSTM, nn.GRU, nn.MultiheadAttention or nn.TransformerEncoderLayer without batch_first, a
CRNN's columns permuted to (W, B, C) for CTC, einops' (3, B, heads, N, d)), where axis 0 is
the sequence. Shapes of a batch of one cannot tell which axis of size 1 is the batch, nor
whether a longer axis 0 folds the batch in (a window attention's (B·windows, heads, N, N),
whose heads may be one): where a row leaves that open, a second trace of a batch of two
does (`ambiguous`, `found_batch`): the batch axis is the one that doubles (`batch_axis_of`).
Axis 0 where it does, or where no axis does (an output without a batch: a position table)."""

from __future__ import annotations

from dataclasses import replace

from cnnlab.design.summary.facts import Trace


def ambiguous(t: Trace) -> bool:
    """Whether a row's output has an axis 0 longer than 1 and an axis of size 1 after it,
    (T, 1, F): the batch may be either."""
    return any(1 in shape[1:] for _, shape in t.unbatched)


def found_batch(one: Trace, two: Trace) -> Trace:
    """`one` (a batch of one's trace) with each row's batch axis where `two` (a batch of
    two's, the same calls) shows it: the one axis that doubles. Rows without such an axis
    past axis 0 keep theirs; `one` as it is where the two traces' rows differ."""
    if [r.name for r in one.rows] != [r.name for r in two.rows]:
        return one  # (the model's calls follow its batch size: nothing to compare)
    doubled = dict(two.unbatched)
    rows = list(one.rows)
    for i, shape in one.unbatched:
        k = batch_axis_of(shape, doubled.get(i, ()))
        if k:  # past axis 0, where the row has it already
            rows[i] = rows[i]._replace(output_shape=(*shape[:k], *shape[k + 1 :]))
    return replace(one, rows=tuple(rows))


def batch_axis_of(shape: tuple, other: tuple, sizes: tuple[int, int] = (1, 2)) -> int | None:
    """The batch axis of `shape`, a call's output for a batch of sizes[0], by `other`, the
    same call's for a batch of sizes[1]: the one axis whose size goes sizes[0] -> sizes[1],
    no other axis differing; None where none does, several do, or the ranks differ.
    (inspect.batch_axis finds the images' axis of a layer's output by the same rule.)"""
    if len(other) != len(shape):
        return None
    moved = [k for k, (a, b) in enumerate(zip(shape, other, strict=True)) if a != b]
    return moved[0] if len(moved) == 1 and (shape[moved[0]], other[moved[0]]) == sizes else None
