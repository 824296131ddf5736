"""A per-layer summary of a spec or of any ``nn.Module``, with design lints (§2, §3.2, §5.2).

trace → facts → lints → render: `trace.py` runs the model once and records frozen per-call
facts (`facts.py`); each lint (`lints.py`) is a pure function of those facts; `summary`
returns a frozen `Summary` that ``str()`` (`render.py`), ``to_dict()`` and the CLI render.

The model runs on the **meta device** (shapes only, no arithmetic): a module is copied
(`copying.py`: the user's model is never touched) and every torch call gets meta twins of
its parameters and buffers; a spec is built directly on meta. Where the model cannot run on
meta (see `META_FAILURES`), a real batch-1 forward under ``no_grad`` on a copy takes over;
so it does where meta would run a call torch refuses on real data (`refusals.py`), and
torch's own error then names the layer. MACs follow torchinfo's convention (`macs.py`), so
totals agree.

Receptive fields follow convs, pools, reshapes, branches, attention, matrix products and
upsampling (`roles.py`, `products.py`): where a call sums over a spatial axis (a global
pool, a flatten, attention over positions) each unit's field covers the whole input along
it. The number is the theoretical field (`tags.global_rf`: as a window over all n
positions, at least the image), so, as through stacked convs, it grows past the image with
each such call (ViT-B/16's last rows: 2,512 px on a 224-px input). A call the trace cannot
follow leaves the rows after it without a field ('?'), and the `unfollowed` lint names the
call and those rows.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import itertools
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import (
    UninitializedBuffer,
    UninitializedParameter,
    UninitializedTensorMixin,
)

from cnnlab.design.build import build
from cnnlab.design.spec import load_spec
from cnnlab.design.summary.batch import ambiguous, found_batch
from cnnlab.design.summary.calls import META, clear_caches
from cnnlab.design.summary.copying import (
    Named,
    clone,
    copy_module,
    named_modules,
    unwrapped,
)
from cnnlab.design.summary.facts import Lint, RowFact, Summary, SummaryRow, Trace
from cnnlab.design.summary.lints import dropped_pixels, lints
from cnnlab.design.summary.refusals import clear_judged
from cnnlab.design.summary.render import shape_text
from cnnlab.design.summary.tags import INPUT_TAG, TAG
from cnnlab.design.summary.trace import TraceError, Tracer
from cnnlab.errors import CnnlabError, SpecError

__all__ = ["Lint", "Summary", "SummaryRow", "summary"]

BYTES_PER_VALUE = 4  # activation memory is counted at float32
# What a forward raises on meta that it would not on real data: NotImplementedError (an op
# with no meta kernel), RuntimeError (`.item()` or `.tolist()` of a meta tensor, a meta
# tensor meeting a CPU tensor made inside forward), TypeError (`.numpy()` of a meta
# tensor). A real forward on a copy takes over; an error it repeats is the model's.
META_FAILURES = (NotImplementedError, RuntimeError, TypeError)


def _trace(model: nn.Module, x: torch.Tensor, tracer: Tracer, real: str | None) -> Trace:
    """Run `model` (ours: a copy or a fresh build, thrown away after, its modules prepared
    by `tracer`) on x with the tracer."""
    setattr(x, TAG, INPUT_TAG)
    try:
        with torch.no_grad(), tracer:
            output = model(x)
        tracer.ended(output)
    except CnnlabError:
        raise
    except Exception as err:  # noqa: BLE001 - re-raised with the layer that raised it
        raise TraceError(tracer.where(), err, tracer.input_fix()) from err
    finally:
        tracer.release()
    return tracer.facts(real)


def _device_and_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Of the model's first floating-point parameter or buffer: its input's."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


def _trace_module(
    model: nn.Module,
    size: tuple[int, ...],
    hooked: list[str] | None = None,
    packed: list[str] | None = None,
    training: bool = False,
    named: Named | None = None,
    batch: int = 1,
) -> Trace:
    """On a meta copy, its input of the model's dtype (a float64 model is given float64, as
    the real forward is; a layer of another dtype is refused as torch refuses it); where
    meta fails (META_FAILURES, `refusals.Refused`), a real forward on a real copy. `hooked`
    gets the names of the modules with forward hooks of the user's (not run), `packed`
    those of the quantized layers (`copying.copy_module`); `training`: the copy in training
    mode (eval mode otherwise); `named`: named_modules(model), if known; `batch`: the images
    run at once (2: `_batch_axes`)."""
    device, dtype = _device_and_dtype(model)
    try:
        tracer = Tracer(size[1:], dtype, training)
        copy = copy_module(model, None, tracer.prepare, tracer.originals, hooked, packed, named)
        x = torch.empty((batch, *size), device=META, dtype=dtype)
        return _trace(copy, x, tracer, None)
    except TraceError as err:
        if not isinstance(err.__cause__, META_FAILURES):
            raise CnnlabError(f"{err}; {_size_fix(err, size)}") from err.__cause__
        why = str(err)
    tracer = Tracer(size[1:], dtype, training, real=True)
    copy = copy_module(model, clone, tracer.prepare, tracer.originals)
    x = torch.zeros((batch, *size), device=device, dtype=dtype)
    try:
        return _trace(copy, x, tracer, why)
    except TraceError as err:
        raise CnnlabError(f"{err}; {_size_fix(err, size)}") from err.__cause__


def _size_fix(err: TraceError, size: tuple[int, ...]) -> str:
    """The end of a failed forward's message: the input size that fits the first layer
    where the trace can tell, else the size to check (in words both the CLI's --input and
    Python's input_size read; it said 'input_size' to a CLI user)."""
    return err.fix or f"check the input size (C, H, W) {shape_text(size)}"


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused (as `timeit` does). A ResNet-50 trace makes
    ~4,000 container objects that reference counting frees when the call returns (the trace
    leaves no cycles: `Tracer.release`); left on, the collector walks them and now and then
    runs a full collection (130 ms with torch loaded)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _input_size(input_size: Any) -> tuple[int, ...]:
    if isinstance(input_size, torch.Tensor):  # an image batch where its shape goes
        shape = tuple(input_size.shape[1:] if input_size.dim() == 4 else input_size.shape)
        batch = " (the tensor's shape without its batch)" if input_size.dim() == 4 else ""
        raise CnnlabError(f"input_size is a shape (C, H, W), not a tensor: give {shape}{batch}")
    try:
        size = tuple(int(v) for v in input_size)
    except (TypeError, ValueError):
        size = ()
    if len(size) == 4 and size[0] >= 1 and min(size) >= 1 and list(size) == list(input_size):
        raise CnnlabError(
            f"input_size is (C, H, W) without the batch: give {size[1:]}, not {input_size!r}"
        )
    if len(size) != 3 or min(size) < 1 or list(size) != list(input_size):
        raise CnnlabError(
            f"input_size must be three positive integers (C, H, W), got {input_size!r}"
        )
    return size


def _spec_trace(model_or_spec: Any, input_size: Iterable[int] | None) -> tuple[Trace, tuple]:
    """A spec built on meta and traced (nothing real is computed), and its input size."""
    if isinstance(model_or_spec, Path):
        model_or_spec = str(model_or_spec)
    spec = load_spec(model_or_spec)
    size = _input_size(spec.input if input_size is None else input_size)
    if size != tuple(spec.input):  # the same layers on another input: validate again
        spec = load_spec({**spec.to_dict(), "input": list(size)})
    with torch.device("meta"):
        model = build(spec)
    tracer = Tracer(size[1:])
    for name, module in named_modules(model):
        tracer.prepare(name, module, vars(module))
    try:
        return _trace(model, torch.empty((1, *size), device="meta"), tracer, None), size
    except TraceError as err:
        raise SpecError(f"{err}; check the input size {shape_text(size)}") from err.__cause__


def summary(model_or_spec: nn.Module | Any, input_size: Iterable[int] | None = None) -> Summary:
    """Per-layer shapes, parameters, receptive field, MACs and design lints (§2, §3.2, §5.2).

    model_or_spec: any nn.Module (needs input_size), or a spec (Spec, dict, preset name,
    .yaml/.json path), whose input_size defaults to spec.input; a model in DDP,
    nn.DataParallel or torch.compile wrappers is summarized as the module they hold, rows
    named as in it. input_size: (C, H, W) of one image, no batch. Raises SpecError
    naming the layer whose output would be below 1×1, CnnlabError naming the layer and the
    shape it got when the model cannot run on input_size.
    """
    with _gc_paused():  # the whole call: its result is the only thing that outlives it
        try:
            return _summarize(model_or_spec, input_size)
        finally:  # each call costs what a first call costs (and leaves the collector less)
            clear_caches()
            clear_judged()
            dropped_pixels.cache_clear()


def _summarize(model_or_spec: nn.Module | Any, input_size: Iterable[int] | None) -> Summary:
    """summary's work, in a frame of its own: the trace's facts are freed when it returns,
    before the garbage collector resumes, which would otherwise walk them all (as young
    objects: 0.5 ms of a 200-conv model's 5 ms)."""
    if isinstance(model_or_spec, nn.Module):
        if input_size is None:
            raise CnnlabError("summary of an nn.Module needs input_size=(C, H, W)")
        size = _input_size(input_size)
        hooked: list[str] = []
        packed: list[str] = []
        model = unwrapped(model_or_spec)[0]
        named = named_modules(model)
        ready = _materialized(model, size, named)
        if ready is not model:  # a copy, its lazy layers made
            model, named = ready, named_modules(ready)
        trace = _trace_module(model, size, hooked, packed, named=named)
        if ambiguous(trace):
            trace = _batch_axes(model, size, trace, named)
        if trace.probabilities is not None and _logits_in_training(model, size):
            trace = dataclasses.replace(trace, probabilities=None)
        return _summary(trace, size, [*_hooks_lint(hooked), *_packed_lint(packed)])
    trace, size = _spec_trace(model_or_spec, input_size)
    return _summary(trace, size)


def _materialized(model: nn.Module, size: tuple[int, ...], named: Named) -> nn.Module:
    """`model`, or, where it holds lazy layers (nn.LazyConv2d, nn.LazyLinear, ...) whose
    parameters are not made yet, a copy of it made real by one dry forward of a zero image of
    `size` in eval mode without gradients, as torch advises (the parameters' shapes come from
    their inputs'; the user's model stays lazy). The trace could not count them (torch's
    'Attempted to use an uninitialized parameter'). CnnlabError naming the lazy layers and
    the forward to run where the copy or its forward fails."""
    lazy = _lazy_tensors(named)
    if not lazy:
        return model
    # deepcopy refuses an uninitialized tensor: each copy is a new one of its kind
    memo = {id(t): _uninitialized(t) for t in lazy}
    try:
        twin = copy.deepcopy(model, memo)
        dtype = next((t.dtype for t in lazy if t.is_floating_point()), torch.float32)
        with torch.no_grad():
            twin.eval()
            twin(torch.zeros((1, *size), device=lazy[0].device, dtype=dtype))
    except Exception as err:  # noqa: BLE001 - any failure: the user's forward is the way
        names = [n for n, m in model.named_modules() if isinstance(m, LazyModuleMixin)]
        raise CnnlabError(
            f"the model's lazy layers ({', '.join(names[:5]) or 'its lazy tensors'}) make "
            f"their parameters at the first forward, and one of a zero {shape_text(size)} "
            f"image on a copy failed ({type(err).__name__}: {err}); run one forward of "
            "your images first (model(images)), then summarize; or check the input size"
        ) from err
    return twin


def _lazy_tensors(named: Named) -> list[torch.Tensor]:
    """The uninitialized parameters, then buffers, of the `named` modules, as
    `is_lazy` over model.parameters() and model.buffers() finds them (each once), read
    from the modules' own dicts: torch's generators cost 0.5-1.1 ms a summary (GhostNet's
    366 modules), this walk a tenth of that."""
    lazy = UninitializedTensorMixin  # is_lazy's test, without a call per tensor
    found = [t for _, m in named for t in m._parameters.values() if isinstance(t, lazy)]
    found += [t for _, m in named for t in m._buffers.values() if isinstance(t, lazy)]
    return list({id(t): t for t in found}.values()) if found else found


def _uninitialized(t: torch.Tensor) -> torch.Tensor:
    """A new uninitialized parameter or buffer like the lazy tensor `t`."""
    kind = UninitializedParameter if isinstance(t, nn.Parameter) else UninitializedBuffer
    return kind(requires_grad=t.requires_grad, device=t.device, dtype=t.dtype)


def _batch_axes(model: nn.Module, size: tuple[int, ...], trace: Trace, named: Named) -> Trace:
    """`trace` with its rows' batch axes found by a second trace, of two images, where a row
    leaves it open (`batch.py`: a sequence-first (T, 1, F)); as it is where the model runs
    one image only (a view to (1, ...)): axis 0 then."""
    try:
        return found_batch(trace, _trace_module(model, size, named=named, batch=2))
    except CnnlabError:
        return trace


def _logits_in_training(model: nn.Module, size: tuple[int, ...]) -> bool:
    """Whether the model returns no probabilities in training mode where it does in eval
    mode (`return z if self.training else z.softmax(1)`): cross-entropy trains on the
    former, so probabilities-out holds its peace. A second trace, run only where the lint
    would fire; one that fails in training mode (batch norm of a single value) tells
    nothing."""
    try:
        return _trace_module(model, size, training=True).probabilities is None
    except CnnlabError:
        return False


def _hooks_lint(hooked: list[str]) -> list[Lint]:
    """The modules with forward hooks of the user's: the trace runs a copy without them (a
    hook would see the copy's meta tensors, and one that keeps what it sees would keep
    them), so a hook that changes its module's input or output is not in the shapes."""
    if not hooked:
        return []
    names = ", ".join(repr(n) if n else "(the model)" for n in hooked[:5])
    more = f" and {len(hooked) - 5} more" if len(hooked) > 5 else ""
    return [Lint(
        "hooks", hooked[0] or "(the model)",
        f"forward hooks of your own on {names}{more} are not run: the summary traces a copy "
        "without them, so one that changes its module's input or output (a resize, a crop) "
        "is not in these shapes; remove them to summarize what the layers alone compute, or "
        "check one real forward",
    )]  # fmt: skip


def _packed_lint(packed: list[str]) -> list[Lint]:
    """torch.ao's quantized conv and linear layers keep their weights packed, not as
    parameters: torch's parameters() and torchinfo count none of them, nor their MACs."""
    if not packed:
        return []
    names = ", ".join(map(repr, packed[:5])) + (f" and {len(packed) - 5} more" * (len(packed) > 5))
    return [Lint(
        "quantized", packed[0],
        f"the quantized layers {names} keep their weights packed, not as parameters: their "
        "weights and MACs are in no total, as torch's parameters() and torchinfo count "
        "them; summarize the float model before quantization for those",
    )]  # fmt: skip


def _summary_row(r: RowFact) -> SummaryRow:
    """SummaryRow(...) of a row's facts, its fields put in its __dict__ at once: the frozen
    dataclass's own __init__ makes nine object.__setattr__ calls (1.4 µs a row, 0.6 this
    way; the same object: equality, hash, repr and pickling read the fields)."""
    rf = r.rf
    row = object.__new__(SummaryRow)
    object.__setattr__(row, "__dict__", {
        "name": r.name, "kind": r.kind, "output_shape": r.output_shape, "params": r.params,
        "trainable": r.trainable, "receptive_field": None if rf is None else rf.size,
        "jump": None if rf is None else rf.jump, "macs": r.macs, "call": r.call,
    })  # fmt: skip
    return row


def _summary(t: Trace, size: tuple[int, ...], found: Iterable[Lint] = ()) -> Summary:
    """The facts as the summary's rows and totals, with the lints (`found`: the model's
    own, before the trace's)."""
    rows = tuple(map(_summary_row, t.rows))
    return Summary(
        rows=rows,
        total_params=t.total_params,
        trainable_params=t.trainable_params,
        total_macs=sum(r.macs for r in rows),
        activation_bytes=sum(math.prod(r.output_shape) for r in rows) * BYTES_PER_VALUE,
        input_size=size,
        warnings=[*found, *lints(t)],
    )
