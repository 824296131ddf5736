"""What a summary knows, as frozen data: the trace's per-call facts, then the summary itself.

The per-call facts are NamedTuples, not frozen dataclasses: a trace makes thousands, and a
frozen dataclass costs 2-5 µs to make (one object.__setattr__ per field) and 1 µs to hash
(windows are cache keys), a NamedTuple a fraction of that.

The tracer (`trace.py`) writes only these records; the lints (`lints.py`) and the renderer
(`render.py`) read only them. Shapes are one image's; fields are in input pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from cnnlab.design.summary.render import render

# record(RowFact, (name, call, ...)): a NamedTuple made of all its fields without its
# Python-level __new__ (0.3 µs less a record; a conv call makes a Tag, a WindowFact and a
# WeightFact, every row a RowFact)
record = tuple.__new__

# --- a unit's field, a window and a chain of them ---


class Field(NamedTuple):
    """geometry.RF as the trace keeps it (§3.2): size, jump and start of a unit's field along
    one axis, in input pixels. The trace makes one per axis at every conv and pool: a frozen
    dataclass costs 1.5 µs to make and 0.6 µs to hash, a NamedTuple a fifth of that."""

    size: int
    jump: int
    start: float


# --- a window and a chain of them ---------------------------------------------------------


class Window(NamedTuple):
    """A conv or pooling window per axis (height, width). padding: zeros before (top, left);
    after: zeros after (bottom, right), None meaning the same as before. An F.pad is a 1×1
    window with padding; a strided slice a 1×1 window with that stride."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    same: bool = False  # padding="same" at stride 1: the output has the input's size
    after: tuple[int, int] | None = None

    def pads(self, axis: int) -> tuple[int, int]:
        """(before, after) zeros along `axis`."""
        before = self.padding[axis]
        return before, before if self.after is None else self.after[axis]


# A map's spatial size as a function of the input's: the windows from the input to it, most
# recent first, as nested pairs (window, rest) so a step costs one tuple. SIZE_FREE: an
# adaptive pool set the size (it no longer depends on the input); None: not followed.
Chain = tuple[Window, "Chain"] | tuple[()]
SIZE_FREE = "size-free"


# --- per-call facts -------------------------------------------------------------------------


class RowFact(NamedTuple):
    """One leaf module call (or a container whose output is its own). rf is None where the
    field could not be followed (`lost_by` names the function)."""

    name: str
    call: int  # 1 for the module's first call, 2 for its second, ...
    kind: str
    output_shape: tuple[int, ...]
    params: int
    trainable: int
    rf: Field | None  # the larger axis
    macs: int
    lost_by: str | None = None


class WindowFact(NamedTuple):
    """A conv or pool call: its window, the real map it reads ((H, W) without the zeros an
    F.pad put around it just before, which `pad` gives as (top, bottom, left, right))."""

    layer: str
    window: Window
    size: tuple[int, int]
    pad: tuple[int, int, int, int] | None


class WeightFact(NamedTuple):
    """A conv or linear call. in_/out_: channels or features; kernel, stride: dilated extent
    and stride per axis ((1, 1) for linear). before: the index of the weight call whose
    output reaches this one's input through BatchNorm, dropout, average pooling or a flatten
    of a vector only (no nonlinearity, no second branch), with those pools' windows."""

    layer: str
    kind: str  # "conv" or "linear"
    in_: int
    out: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    groups: int
    weights: int
    bias: int
    before: int | None
    pools: tuple[Window, ...] = ()


class HeadFact(NamedTuple):
    """Where the map becomes a vector (flatten, global or adaptive pooling): the layer, the
    field of the map's units (height, width), the map's shape, and whether a flatten (not a
    pool) made the vector."""

    layer: str
    rf: tuple[Field, Field]
    shape: tuple[int, ...]
    flatten: bool = False


class DenseFact(NamedTuple):
    """The first linear call on a flattened map: its layer, the flatten's layer, the map's
    shape, how the map's size follows the input's (`Chain`, SIZE_FREE or None), its params,
    and the last fixed pooling window on the way (layer, window) if no conv after it changed
    the map's size (a 1×1 or 'same' conv keeps it)."""

    layer: str
    flatten: str
    shape: tuple[int, ...]
    chain: Any
    params: int
    last_pool: tuple[str, Window] | None


class SquashFact(NamedTuple):
    """A saturating activation's output reaching a conv/linear through linear ops only."""

    activation: str
    layer: str


class OutputFact(NamedTuple):
    """The call that made the model's output, where softmax can then give no class near
    probability 1: a softmax or sigmoid (`calls.PROBABILITIES`), or, with `bounds`, a
    bounded activation (a tanh: (−1, 1)) that made (batch, K) scores (`Tracer.ended`).
    made_by: the module's class name (module True) or the function as the forward writes it
    (F.softmax, torch.sigmoid; its layer: whose forward called it; "" where the trace knows
    only that a saturating function made it); classes: the output's features where it is
    (batch, features), else None; values: one image's number of values (None: not
    recorded)."""

    layer: str
    made_by: str
    module: bool
    classes: int | None
    values: int | None = None
    bounds: tuple[float, float] | None = None  # None: probabilities


class LostFact(NamedTuple):
    """A torch function the trace cannot follow the receptive field through."""

    function: str
    layer: str


@dataclass(frozen=True)
class Trace:
    """Everything one traced forward found, in call order."""

    image: tuple[int, int]
    rows: tuple[RowFact, ...]
    windows: tuple[WindowFact, ...]
    weights: tuple[WeightFact, ...]
    heads: tuple[HeadFact, ...]
    dense: DenseFact | None
    squashes: tuple[SquashFact, ...]
    lost: tuple[LostFact, ...]
    total_params: int
    trainable_params: int
    real_forward: str | None  # why the meta trace failed, where a real forward took over
    shared: frozenset[int] = frozenset()  # weights' indices whose output two calls read
    # a softmax or sigmoid made the output, or (`bounds`) a bounded activation its scores
    probabilities: OutputFact | None = None
    # the output (a tuple's or dict's first) is a map of several positions: per-pixel
    # predictions, so a global pool on the way is a gate or a context branch, not its head
    map_out: bool = False
    # the BatchNorm layers without running statistics (track_running_stats=False)
    batch_stats: tuple[str, ...] = ()
    # (row index, torch's output shape) of the rows whose axis 0 is not of size 1 (`batch.py`)
    unbatched: tuple[tuple[int, tuple[int, ...]], ...] = ()


# --- the summary ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryRow:
    """One layer call: output_shape is one image's (C, H, W) or (F,), torch's shape without
    the batch axis, wherever it is (a sequence-first (T, B, F) shows as (T, F): `batch.py`;
    a batch folded into axis 0, Swin's windows, as one window's); receptive_field and
    jump in input pixels (the larger axis; None where the trace could not follow it; 0 for
    a layer no input pixel reaches: a position embedding of fixed ids); macs
    of one image; call counts the module's calls (2: its second row)."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    trainable: int
    receptive_field: int | None
    jump: int | None
    macs: int
    call: int = 1


@dataclass(frozen=True)
class Lint:
    """A design warning: `code` (e.g. "floor"), the layer's dotted name, why and the fix."""

    code: str
    layer: str
    message: str


@dataclass(frozen=True)
class Summary:
    """Rows in execution order, totals of the whole model (each parameter counted once),
    activation memory per image in bytes (float32, the sum of every row's output), lints."""

    rows: tuple[SummaryRow, ...]
    total_params: int
    trainable_params: int
    total_macs: int
    activation_bytes: int
    input_size: tuple[int, ...]
    warnings: list[Lint]  # a list, as DESIGN.md's public API names it (`== []` when clean)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain ints, strings and lists."""
        return {
            "input_size": list(self.input_size),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_macs": self.total_macs,
            "activation_bytes": self.activation_bytes,
            "rows": [{**asdict(r), "output_shape": list(r.output_shape)} for r in self.rows],
            "warnings": [asdict(w) for w in self.warnings],
        }

    def __str__(self) -> str:
        return render(self)
