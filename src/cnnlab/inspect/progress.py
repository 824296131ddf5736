"""Progress of the long library loops (evaluation batches, probe features and fits, diagnose
passes, activation-maximisation steps, the report's parts): an optional
`progress(done, total, what)` keyword, called with 0 done as the loop starts and after each
step, `done` rising to `total` (0 when the total is not known in advance) and `what` naming
the loop. The library never
prints: the caller renders it (the CLI: a rich bar on stderr), as the lab's `ctx.progress`.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from math import ceil
from typing import Any

Progress = Callable[[int, int, str], None]


def batch_count(data: Any, batch_size: int) -> int:
    """How many batches `cnnlab.inspect.batches(data, batch_size)` yields, 0 when not known
    (an iterator): a Tensor or (images, labels) pair or .images/.labels object is cut into
    ceil(N / batch_size), a sized iterable of batches has its length."""
    from cnnlab.inspect.batches import as_pair  # batches' own reading: one-hot, list labels

    images = getattr(data, "images", None)
    pair = as_pair(data) if images is None else None
    if pair is not None and len(pair[0]) == len(pair[1]):
        images = pair[0]
    if images is None and hasattr(data, "ndim"):  # a tensor, or a NumPy array as batches reads
        images = data
    if images is not None:
        return ceil(len(images) / batch_size)
    return len(data) if isinstance(data, Sized) else 0
