"""The activation table: every activation cnnlab knows, and what each one does (notes §4).

One record per activation, read by every part that needs to know about activations:

* the spec language builds the six spec kinds with ``make`` (``SPEC_ACTIVATIONS``);
* the summary knows which call a module's forward makes (``functions[0]``) and which
  activations squash (``saturates``);
* diagnose finds activations where they are computed, as a module (``activation_of``) or as a
  functional call (``activation_of_call``), counts dead units where ``rectifier`` says the
  dead-unit test applies, and saturated outputs within ``band`` of ``bounds`` (a hardtanh's
  and ReLU6's own bounds: ``activation_of`` and ``activation_of_call`` resolve them);
* activation maximisation optimises a unit's input instead of its output where the
  activation is ``monotone`` (same maximiser, and a gradient where a ReLU is flat zero).

Each claim (zero floor, monotone, bounds) is checked numerically against torch in
tests/test_activations.py, so the table cannot say something torch does not do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from numbers import Real

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.design.quote import quote
from cnnlab.errors import SpecError

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_MODULES",
    "SPEC_ACTIVATIONS",
    "Activation",
    "activation_of",
    "activation_of_call",
]


@dataclass(frozen=True)
class Activation:
    """One activation function and the facts the rest of cnnlab needs about it.

    name: the kind's name (``relu``, ``leaky_relu``, ...), also the spec's name for it.
    modules: the ``nn.Module`` types that compute it (a subclass is matched too).
    functions: every torch callable that computes it (``F.x``, ``torch.x``, ``Tensor.x`` and
        their in-place ``_`` forms that exist in this torch). ``functions[0]`` is the call
        the modules' forward makes, so a module can stand for that call.
    make: the spec builder, ``make(arg=None) -> nn.Module``; None if not a spec kind. It
        refuses an argument it has no use for, so ``relu: 0.1`` fails instead of meaning ReLU.
    zero_floor: the output is exactly 0 for every input <= 0 (ReLU, §4.2), so a unit whose
        input is never positive outputs 0 on every input and gets no gradient: dead.
    rectifier: the ReLU family (identity-like for x > 0; zero or small for x < 0). The
        dead-unit test "never positive on any input" applies (§4.3); for the family's
        members without a zero floor such a unit still passes a small gradient but carries
        no positive signal.
    saturates: the band, in output units, within which an output counts as saturated at
        ``bounds`` (sigmoid/tanh 0.01: the derivative there is < 0.02, §4.2; hardtanh and
        hardsigmoid 0.0: exactly at the bound, where their derivative is 0); None if the
        activation does not saturate. Test with ``is not None``: 0.0 is a band.
    bounds: (low, high) the output never leaves, for a saturating or capped activation; else
        None. The table's are the default arguments'; ``activation_of`` and
        ``activation_of_call`` give a hardtanh or ReLU6 its own (``min_val``, ``max_val``).
    monotone: non-decreasing in its input (at the default arguments): maximising its input
        maximises its output.
    capped: the band within which a rectifier capped at ``bounds[1]`` (ReLU6) counts as
        saturated there (0.0: exactly at the cap, where its derivative is 0); None if none.
        Only the cap: its floor 0 is where a unit sleeps or dies, which the dead-unit
        statistics (§4.3) count already. Not ``saturates``: what reads that (the summary's
        lint on saturating activations feeding hidden layers, §4.2) means sigmoid/tanh-like
        squashers, and a ReLU6 passes its whole linear range (MobileNetV2 is no such net).
    """

    name: str
    modules: tuple[type[nn.Module], ...]
    functions: tuple[Callable, ...]
    make: Callable[..., nn.Module] | None
    zero_floor: bool
    rectifier: bool
    saturates: float | None
    bounds: tuple[float, float] | None
    monotone: bool
    capped: float | None = None

    @property
    def band(self) -> float | None:
        """The band diagnose counts saturated outputs within: ``saturates``, else
        ``capped``; None if this activation has no saturated outputs to count."""
        return self.saturates if self.saturates is not None else self.capped

    def saturated(self, y: Tensor) -> Tensor:
        """Boolean mask of y's entries within ``band`` of a bound (of the cap alone for a
        capped rectifier); all False if there is no band."""
        band = self.band
        if band is None or self.bounds is None:
            return torch.zeros_like(y, dtype=torch.bool)
        low, high = self.bounds
        top = y >= high - band
        return top if self.saturates is None else top | (y <= low + band)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


# --- spec builders -------------------------------------------------------------------------


def _plain(name: str, cls: type[nn.Module]) -> Callable[..., nn.Module]:
    def make(arg=None) -> nn.Module:
        if arg is not None:
            raise SpecError(f"activation {name} takes no argument, got {quote(arg)}")
        return cls()

    make.__doc__ = f"{name}: ``nn.{cls.__name__}()``; takes no argument."
    return make


def _with_number(
    name: str, cls: type[nn.Module], what: str, default: float
) -> Callable[..., nn.Module]:
    def make(arg=None) -> nn.Module:
        if arg is None:
            arg = default
        if isinstance(arg, bool) or not isinstance(arg, Real):
            raise SpecError(f"activation {name} takes a number ({what}), got {quote(arg)}")
        return cls(float(arg))

    make.__doc__ = f"{name}: ``nn.{cls.__name__}({what}={default})``; arg sets the {what}."
    return make


def _gelu(arg=None) -> nn.Module:
    """gelu: ``nn.GELU()``; arg "tanh" picks the tanh approximation."""
    approximate = "none" if arg is None else arg
    if approximate not in ("none", "tanh"):
        raise SpecError(f'activation gelu takes "none" or "tanh" (approximation), got {quote(arg)}')
    return nn.GELU(approximate=approximate)


# --- the table -----------------------------------------------------------------------------


def _functions(*names: str, first: Callable | None = None) -> tuple[Callable, ...]:
    """The callables named `names` on F, torch and Tensor that exist in this torch, `first`
    (else the F form: what the modules call) leading."""
    found: list[Callable] = [] if first is None else [first]
    for name in names:
        for owner in (F, torch, Tensor):
            fn = getattr(owner, name, None)
            if fn is not None and fn not in found:
                found.append(fn)
    return tuple(found)


def _act(
    name: str,
    modules: tuple[type[nn.Module], ...],
    functions: tuple[Callable, ...],
    *,
    make: Callable[..., nn.Module] | None = None,
    zero_floor: bool = False,
    rectifier: bool = False,
    saturates: float | None = None,
    bounds: tuple[float, float] | None = None,
    monotone: bool = True,
    capped: float | None = None,
) -> Activation:
    return Activation(
        name, modules, functions, make, zero_floor, rectifier, saturates, bounds, monotone, capped
    )


_TABLE = (
    # The spec kinds (§4): the notes' ReLU, its leaky and smooth variants, the two squashers.
    _act("relu", (nn.ReLU,), _functions("relu", "relu_"), make=_plain("relu", nn.ReLU),
         zero_floor=True, rectifier=True),
    _act("leaky_relu", (nn.LeakyReLU,), _functions("leaky_relu", "leaky_relu_"),
         make=_with_number("leaky_relu", nn.LeakyReLU, "negative slope", 0.01), rectifier=True),
    _act("elu", (nn.ELU,), _functions("elu", "elu_"),
         make=_with_number("elu", nn.ELU, "alpha", 1.0), rectifier=True),
    # GELU dips below 0 near x = -0.75: not monotone.
    _act("gelu", (nn.GELU,), _functions("gelu"), make=_gelu, rectifier=True, monotone=False),
    # torch.sigmoid, not F.sigmoid, is what nn.Sigmoid calls.
    _act("sigmoid", (nn.Sigmoid,), _functions("sigmoid", "sigmoid_", first=torch.sigmoid),
         make=_plain("sigmoid", nn.Sigmoid), saturates=0.01, bounds=(0.0, 1.0)),
    _act("tanh", (nn.Tanh,), _functions("tanh", "tanh_", first=torch.tanh),
         make=_plain("tanh", nn.Tanh), saturates=0.01, bounds=(-1.0, 1.0)),
    # Found in models users bring (torchvision, timm, MONAI): not spec kinds.
    # ReLU6 saturates at its cap 6 (derivative 0) but is no squasher: `capped`, not `saturates`.
    _act("relu6", (nn.ReLU6,), _functions("relu6"), zero_floor=True, rectifier=True,
         bounds=(0.0, 6.0), capped=0.0),
    _act("prelu", (nn.PReLU,), _functions("prelu"), rectifier=True,
         monotone=False),  # its slope is learned and may turn negative
    _act("rrelu", (nn.RReLU,), _functions("rrelu", "rrelu_"), rectifier=True),
    _act("celu", (nn.CELU,), _functions("celu", "celu_"), rectifier=True),
    _act("selu", (nn.SELU,), _functions("selu", "selu_"), rectifier=True),
    _act("silu", (nn.SiLU,), _functions("silu"), rectifier=True, monotone=False),
    _act("mish", (nn.Mish,), _functions("mish"), rectifier=True, monotone=False),
    _act("hardswish", (nn.Hardswish,), _functions("hardswish"), rectifier=True,
         monotone=False),
    _act("hardsigmoid", (nn.Hardsigmoid,), _functions("hardsigmoid"), saturates=0.0,
         bounds=(0.0, 1.0)),
    # ReLU6 is hardtanh(x, 0, 6): activation_of_call resolves that call to relu6.
    _act("hardtanh", (nn.Hardtanh,), _functions("hardtanh", "hardtanh_"), saturates=0.0,
         bounds=(-1.0, 1.0)),
    # x / (1 + |x|): tanh's shape, slower tails. Its slope (1 − |y|)² is below 0.01 within
    # 0.1 of a bound (sigmoid's and tanh's band holds theirs below 0.02).
    _act("softsign", (nn.Softsign,), _functions("softsign"), saturates=0.1,
         bounds=(-1.0, 1.0)),
    _act("tanhshrink", (nn.Tanhshrink,), _functions("tanhshrink")),  # x − tanh(x)
    # log σ(x): flat near 0 for large x, unbounded below; no squasher.
    _act("logsigmoid", (nn.LogSigmoid,), _functions("logsigmoid")),
)  # fmt: skip

ACTIVATIONS: dict[str, Activation] = {a.name: a for a in _TABLE}
# The names the spec language accepts, in the order its docs list them.
SPEC_ACTIVATIONS: tuple[str, ...] = tuple(a.name for a in _TABLE if a.make is not None)
# Every module type that is an activation (isinstance checks; ReLU6 is a Hardtanh subclass).
ACTIVATION_MODULES: tuple[type[nn.Module], ...] = tuple(m for a in _TABLE for m in a.modules)

_BY_MODULE: dict[type, Activation] = {m: a for a in _TABLE for m in a.modules}
_BY_FUNCTION: dict[Callable, Activation] = {f: a for a in _TABLE for f in a.functions}


def _hardtanh(low: object, high: object) -> Activation:
    """hardtanh(x, low, high), with its own bounds; with a floor of 0 it has ReLU's zero
    floor: it is relu6 (or a clipped ReLU), capped at `high`. The table's record itself when
    the bounds are its defaults."""
    found = ACTIVATIONS["relu6"] if low == 0 else ACTIVATIONS["hardtanh"]
    try:
        bounds = (float(low), float(high))
    except (TypeError, ValueError, RuntimeError):  # not numbers: the table's defaults
        return found
    return found if bounds == found.bounds else replace(found, bounds=bounds)


def activation_of(module: nn.Module) -> Activation | None:
    """The activation `module` computes, or None if it is no activation module.

    The most specific type wins (``nn.ReLU6`` is a subclass of ``nn.Hardtanh``: relu6); an
    ``nn.Hardtanh(0, x)`` is relu6 too, as its functional call is. A hardtanh or ReLU6 has
    its module's ``min_val`` and ``max_val`` as ``bounds``.
    """
    for cls in type(module).__mro__:
        found = _BY_MODULE.get(cls)
        if found is not None:
            if found.name == "hardtanh":
                return _hardtanh(getattr(module, "min_val", -1.0), getattr(module, "max_val", 1.0))
            return found
    return None


def activation_of_call(
    func: Callable, args: tuple = (), kwargs: dict | None = None
) -> Activation | None:
    """The activation a call ``func(*args, **kwargs)`` computes, or None.

    For a ``__torch_function__`` hook: ``F.relu``, ``torch.relu_``, ``Tensor.sigmoid`` ...
    ``hardtanh(x, 0, ...)`` (how ``F.relu6`` and ``nn.ReLU6`` may compute) is relu6. A
    hardtanh call has its arguments ``min_val`` and ``max_val`` as ``bounds``.
    """
    try:
        found = _BY_FUNCTION.get(func)
    except TypeError:  # an unhashable callable is no activation
        return None
    if found is not None and found.name == "hardtanh":
        kwargs = kwargs or {}
        low = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
        high = kwargs.get("max_val", args[2] if len(args) > 2 else 1.0)
        return _hardtanh(low, high)
    return found
