"""Running a user's model on images and reading what it says: the images checked, the
forward pass with a clear error when they do not fit, the (B, K) logits picked from any
output, the class to explain per image, and whether a model is a classifier of given images
at all (`classifier_misfit`: what training, import and opening a run check first)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from cnnlab.errors import ExplainError
from cnnlab.inspect.hooks import Hooks
from cnnlab.inspect.preserve import eager_stance

PROBE = 2  # zero images in classifier_misfit's batch: two tell a batch dim from a class dim

# How to pick the logits from a model that returns a tuple, list or dict: an index, a key,
# or a function of the raw output. None means the output must already be a (B, K) tensor.
OutputSelector = int | str | Callable[[Any], Tensor] | None


def check_images(x: Tensor, *, flat: bool = False) -> Tensor:
    """x itself if it is a float (B, C, H, W) tensor with B ≥ 1 and finite values (flat=True:
    any float (B, ...) with at least 2 dimensions, e.g. (B, F) for an MLP); ExplainError
    naming the fix. Images made under torch.inference_mode() come back as a copy made outside
    it: autograd refuses to track an inference tensor ('Setting requires_grad=True on
    inference tensor outside InferenceMode is not allowed'), and a copy is a normal tensor."""
    if not isinstance(x, Tensor):
        raise ExplainError(
            f"images must be a torch.Tensor (B, C, H, W), got {type(x).__name__}{_tensor_fix(x)}"
        )
    if (x.dim() < 2 if flat else x.dim() != 4) or x.shape[0] == 0:
        shape = "(B, C, H, W) or (B, D)" if flat else "(B, C, H, W)"
        raise ExplainError(
            f"images must have shape {shape} with B ≥ 1, got {tuple(x.shape)}; "
            f"{_shape_fix(x, flat)}"
        )
    if not x.is_floating_point():
        raise ExplainError(not_float(x))
    if not x.is_meta and not torch.isfinite(x).all():
        raise ExplainError(not_finite(x))
    return x.clone() if x.is_inference() and not torch.is_inference_mode_enabled() else x


def not_finite(x: Tensor) -> str:
    """The refusal of images holding NaN or ±inf: every layer after them is NaN, so a dead-unit
    count reads every unit dead (NaN > 0 is false), gradient flow reads 'exploding' and a
    Grad-CAM map is all zeros, each a measurement of the input, not of the model."""
    bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero().flatten().tolist()
    which = ", ".join(map(str, bad[:5])) + (f", ... ({len(bad)} in all)" if len(bad) > 5 else "")
    return (
        f"images hold NaN or infinite values (image {which} of a batch of {len(x)}); a "
        "normalisation dividing by a zero std makes them: fix the preprocessing or drop those "
        "images"
    )


def _tensor_fix(x: Any) -> str:
    """The call that makes a tensor of x: NumPy's arrays share their memory with
    torch.from_numpy; a list of (C, H, W) tensors stacks into a batch."""
    if hasattr(x, "__array__"):
        return ": pass torch.from_numpy(images)"
    if isinstance(x, list | tuple) and x and all(isinstance(t, Tensor) for t in x):
        return ": pass torch.stack(images)"
    return ""


def _shape_fix(x: Tensor, flat: bool) -> str:
    """How to make images check_images takes of x, each fix one that passes it: the dims x
    lacks where that is clear, the two readings of a 3-D x (one image, or a batch of grey
    images: unsqueeze(0) of 3 grey images is one RGB image)."""
    if x.dim() == 0:
        return "a single number is no image: give a batch of images"
    if x.dim() == 1:
        one = "; one (D,) vector for a model of vectors: x[None]" if flat else ""
        return f"for one flattened image, x.reshape(1, C, H, W) with its channels and size{one}"
    if x.shape[0] == 0:
        return "the batch is empty: give at least one image"
    if x.dim() == 2:
        return "if it is one grey (H, W) image, add its batch and channel dims: x[None, None]"
    if x.dim() == 3:
        return (
            "add a batch dimension with x.unsqueeze(0) for one (C, H, W) image, or a channel "
            "dimension with x.unsqueeze(1) for a batch of grey (B, H, W) images"
        )
    return f"give {x.dim()}-D images as a 4-D batch (B, C, H, W), e.g. x.flatten(0, -4)"


def not_float(x: Tensor) -> str:
    """The refusal of integer (or boolean) images, which every function that takes images
    makes: the model learned on normalised floats."""
    return (
        f"images must be floating point, got {x.dtype} of shape {tuple(x.shape)}; "
        "normalise them first, as for training (e.g. Run.preprocess)"
    )


def select_logits(out: Any, output: OutputSelector = None) -> Tensor:
    """The (B, K) logits inside a model's raw output, chosen by `output`."""
    if callable(output):
        out = output(out)
    elif output is not None:
        try:
            out = out[output]
        except (KeyError, IndexError, TypeError) as error:
            raise ExplainError(
                f"output={output!r} does not select anything in the model's "
                f"{type(out).__name__} output: {error}"
            ) from error
    if not isinstance(out, Tensor):
        raise ExplainError(
            f"the model returns {_a(type(out).__name__)}, not a logits tensor; pass "
            f"{_pick(out)} to pick the logits{_items(out)}"
        )
    if out.dim() != 2:
        raise ExplainError(
            f"the model's logits must have shape (B, K), got {tuple(out.shape)}; {_reduce(out)}"
        )
    return out


def _reduce(out: Tensor) -> str:
    """How to make (B, K) logits of out: a conv head's (B, K, 1, 1), a pool with no flatten
    after it, is its flatten; other shapes need the user's own reduction."""
    if out.dim() > 2 and all(n == 1 for n in out.shape[2:]):
        return "a head with no flatten: pass output=lambda out: out.flatten(1)"
    return "pass output= (a function) to reduce them"


def _items(out: Any) -> str:
    """What a tuple, list or dict output holds, by index or key and shape ("" otherwise): two
    (B, K) tensors, (features, logits), look alike to cnnlab, so the user picks by what each
    holds."""
    if isinstance(out, dict):
        pairs = list(out.items())
    elif isinstance(out, tuple | list):
        pairs = list(enumerate(out))
    else:
        return ""
    shown = [
        f"{k!r}: {_shape_text(v) if isinstance(v, Tensor) else type(v).__name__}" for k, v in pairs
    ]
    return f" (it holds {', '.join(shown[:6])}{', ...' if len(shown) > 6 else ''})"


def _pick(out: Any) -> str:
    """The output= that picks the logits from `out`: "logits" where it holds them under that
    key (a transformers ModelOutput, a dict), else how to give one."""
    if isinstance(out, dict) and isinstance(out.get("logits"), Tensor):
        return 'output="logits"'
    return "output= (a key or a function)" if isinstance(out, dict) else (
        "output= (an index or a function)"
    )  # fmt: skip


def forward(
    model: nn.Module, x: Tensor, output: OutputSelector = None, *, logits: bool = True
) -> Any:
    """model(x) as (B, K) logits (logits=False: the raw output, for methods that only read
    layers); a clear error when the images do not fit the model.

    The model gets a copy of x (autograd flows through it to x): a forward that changes its
    input in place (`x.mul_(...)`, an in-place activation first) would otherwise change the
    caller's images, so every later call on them, and a gradient w.r.t. x, a leaf, would
    raise. Which models do so cannot be known before the call; the copy of 32×3×224×224
    images takes ~1.4 ms, ~0.1 % of a Grad-CAM of them on ResNet-18 (1.5 s, one thread)."""
    try:
        out = model(x.clone())
    except RuntimeError as error:  # shape, channel or dtype mismatch inside a torch op
        raise _misfit(model, x, error) from error
    except ValueError as error:  # torch's own, where one image lacks its batch dim (BatchNorm)
        if x.dim() != 3:
            raise
        raise _misfit(model, x, error) from error
    if not logits:
        return out
    try:
        return select_logits(out, output)
    except ExplainError as error:  # a (K,) output of a (C, H, W) image
        raise ExplainError(f"{error}{_one_image(x)}") from None


def _misfit(model: nn.Module, x: Tensor, error: Exception) -> ExplainError:
    """The error saying why `model` could not run on `x` and what to give it instead."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if not x.is_meta:  # a meta x: a shape-only forward of a real model's meta copy
        check_values(model)
    weights = next((p.dtype for p in model.parameters() if p.is_floating_point()), x.dtype)
    if not x.is_floating_point() and weights != x.dtype:  # x.to(float32) of uint8: 0..255
        return ExplainError(f"{not_float(x)} ({first})")
    if weights != x.dtype:  # float64 images on float32 weights: told to fix channels, size
        return ExplainError(
            f"the model cannot run on {x.dtype} images ({first}); its weights are "
            f"{weights}: give the images as x.to({weights})"
        )
    return ExplainError(
        f"the model cannot run on images of shape {tuple(x.shape)} ({first}); give images "
        f"with the channels and size the model was trained on{_one_image(x)}"
        f"{_channels_last(model, x)}"
    )


def _channels_last(model: nn.Module, x: Tensor) -> str:
    """A hint for (B, H, W, C) images (NumPy's, PIL's and TensorFlow's order) where the
    model's first conv takes C channels: torch's message counts their height as channels."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None or x.dim() != 4 or x.shape[1] == conv.in_channels:
        return ""
    if x.shape[-1] != conv.in_channels:
        return ""
    return (
        f"; these look channels-last (B, H, W, C) with C = {x.shape[-1]}, the first conv's "
        "channels: give x.permute(0, 3, 1, 2)"
    )


def _one_image(x: Tensor) -> str:
    """A hint for a 3-D x, which the functions that take flat (B, F) inputs as well let
    through: a single (C, H, W) image runs through unbatched convs until a BatchNorm, a
    Flatten(1) or the logits' (B, K) check refuses it."""
    if x.dim() != 3:
        return ""
    return (
        f"; if {tuple(x.shape)} is one (C, H, W) image, add its batch dim: x.unsqueeze(0) "
        "(a batch of grey (B, H, W) images: their channel dim, x.unsqueeze(1))"
    )


def resolve_target(target: int | Iterable[int] | Tensor | None, logits: Tensor) -> Tensor:
    """Class index per image, (B,) int64; None means the predicted class."""
    batch, classes = logits.shape
    if target is None:
        return logits.detach().argmax(1)
    try:
        t = torch.as_tensor(target, device=logits.device)
    except (TypeError, ValueError, RuntimeError) as error:  # a class name, ragged lists
        raise ExplainError(
            f"target must be class indices (an int, a list of ints or a (B,) tensor), got "
            f"{target!r}"
        ) from error
    if t.dim() == 2 and tuple(t.shape) == (batch, classes) and classes > 1:
        raise ExplainError(
            f"target must be class indices, got shape {tuple(t.shape)}, a one-hot row per "
            "image; give target.argmax(1)"
        )
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ExplainError(f"target must be integer class indices, got dtype {t.dtype}")
    t = t.long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ExplainError(f"target has {t.numel()} entries for a batch of {batch} images")
    bad = t[(t < 0) | (t >= classes)]
    if bad.numel():
        raise ExplainError(
            f"target {bad[0].item()} is outside the model's classes 0..{classes - 1}"
        )
    return t.clone()


def meta_weights(model: nn.Module) -> str | None:
    """Why `model` has no values to compute with (its parameters or buffers are on the meta
    device, and how to give it some), or None."""
    empty = [n for n, t in chain(model.named_parameters(), model.named_buffers()) if t.is_meta]
    if not empty:
        return None
    return (
        f"its parameters are on the meta device ({empty[0]}: a shape without values, as "
        "under torch.device('meta')); build it on the CPU, or give it values first: "
        "model.to_empty(device='cpu'), then initialise it"
    )


def check_values(model: nn.Module) -> nn.Module:
    """`model` itself; ExplainError when its weights have no values (`meta_weights`): a
    forward on the meta device computes shapes, and on another device it raised torch's
    'Tensor on device meta is not on the expected device cpu!', which was read as images of
    the wrong size."""
    empty = meta_weights(model)
    if empty:
        raise ExplainError(f"the model cannot be run: {empty}")
    return model


class Misfit(NamedTuple):
    """Why a model cannot classify images: `kind` "run" (it raised), "weights" (its
    parameters are not float32, or on the meta device: no values), "output" (it returned no
    float logits tensor, its class scores as a (B, K, h, w) map, or one dim for the batch),
    "one-image" (a batch runs but one image does not, or loses its batch dim: a
    `.squeeze()`), "call" (forward needs more arguments than the images), "classes" (a
    tensor of another shape than (B, K): `why` is "outputs (5,) per image"), or "softmax"
    (its outputs are already probabilities); `why` says what and how to fix it."""

    kind: str
    why: str
    outputs: int | None = None  # "classes": the model's outputs per image, when one dim


def classifier_misfit(
    model: nn.Module,
    input_shape: Iterable[int],
    classes: int,
    *,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Misfit | None:
    """None when `model`, in its current mode and without gradients, takes PROBE zero images
    of `input_shape` (C, H, W), laid out in `memory_format` (torch.channels_last: as a
    channels-last training feeds them, where `x.view(B, -1)` after a conv fails), and
    returns (PROBE, classes) floating-point logits, and, in eval mode, (1, classes) for one
    image (predict and explain give one); else the Misfit.
    A forward that raises is located: the innermost module then running, its type and the
    shapes it got ("mat1 and mat2 shapes cannot be multiplied (...) (in layer 2, a Linear,
    given 2×288)"). torch.compile'd code runs eagerly in the check (`eager_stance`; on
    torch < 2.6 it runs compiled, and a model compiled whole may fail inside dynamo)."""
    # only floating-point parameters decide: model.float() leaves an integer or boolean one
    # (a step counter held as nn.Parameter(requires_grad=False)) as it is
    odd = [
        (n, p.dtype)
        for n, p in model.named_parameters()
        if p.is_floating_point() and p.dtype != torch.float32
    ]
    if odd:
        name, dtype = odd[0]
        return Misfit(
            "weights",
            f"its parameters are {str(dtype).removeprefix('torch.')} ({name}), but images come "
            "as float32; return model.float() (for bfloat16 speed, train with --precision "
            "bf16, which autocasts)",
        )
    # a model built under torch.device("meta") failed in its first layer with torch's
    # 'Tensor on device meta is not on the expected device cpu!', read as an input misfit
    empty = meta_weights(model)
    if empty:
        return Misfit("weights", empty)
    needed = _more_arguments(model)
    if needed:
        return Misfit(
            "call",
            f"has forward(x, {', '.join(needed)}), but cnnlab calls model(images) alone: give "
            f"{', '.join(needed)} a default, or wrap the model in a module whose forward(x) "
            "passes them",
        )
    # compiled modules run their Python forward: the check's hooks, traced inside a model
    # compiled whole, failed in dynamo ('already tracked for mutation'), and compiling a
    # graph for 2 zero images only to check shapes costs seconds
    with torch.no_grad(), eager_stance():
        x = torch.zeros(PROBE, *input_shape).contiguous(memory_format=memory_format)
        out, failure = _located_forward(model, x)
        if failure is not None:
            return Misfit("run", failure)
        return _output_misfit(out, classes) or _single_misfit(model, x[:1], classes)


def _more_arguments(model: nn.Module) -> list[str]:
    """The arguments of `model.forward` after the images that have no default."""
    try:
        parameters = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # a builtin or C forward: the call itself says
        return []
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters[1:] if p.kind in named and p.default is p.empty]


def _single_misfit(model: nn.Module, x: Tensor, classes: int) -> Misfit | None:
    """What is wrong with the model's output for one image (predict and explain give one),
    in eval mode (a training-mode BatchNorm refuses a batch of one): a `.squeeze()` after the
    pooling drops the batch dim along with the 1×1 ones."""
    if model.training:
        return None
    with torch.no_grad():
        out, failure = _located_forward(model, x)
    if failure is not None:
        return Misfit("one-image", f"{failure}, on one image")
    if isinstance(out, Tensor) and tuple(out.shape) != (1, classes):
        return Misfit(
            "one-image",
            f"returns {tuple(out.shape)} for one image where 2 images give (2, {classes}): "
            "keep the batch dim, e.g. .flatten(1) instead of .squeeze() after the pooling",
        )
    return None


def _output_misfit(out: Any, classes: int) -> Misfit | None:
    """What is wrong with `out` as the logits of 2 images over `classes` classes."""
    if not isinstance(out, Tensor):
        pick = (
            "net(x).logits" if isinstance(getattr(out, "logits", None), Tensor)
            else "net(x)['logits']" if isinstance(out, dict)
            else "net(x)[0]" if isinstance(out, tuple | list)
            else "the logits"
        )  # fmt: skip
        return Misfit(
            "output",
            f"returns {_a(type(out).__name__)}, not a logits tensor; cnnlab trains and reads one "
            f"(B, {classes}) logits tensor: make forward return only the logits, e.g. in a "
            f"wrapper module whose forward returns {pick}",
        )
    if not out.is_floating_point():
        return Misfit(
            "output",
            f"returns {str(out.dtype).removeprefix('torch.')} values of shape "
            f"{tuple(out.shape)}, not float logits; return the class scores (before argmax)",
        )
    # a 1×1 conv head's (B, K, h, w) scores; one query token's (B, 1, K) (told to give K
    # outputs, which it had)
    flat = out.dim() > 2 and out[0].numel() == classes
    if out.dim() > 2 and (out.shape[1] == classes or flat):
        fix = (
            "flatten them: end forward with nn.Flatten() or x.flatten(1)"
            if flat
            else "pool and flatten them: end forward with nn.AdaptiveAvgPool2d(1), nn.Flatten()"
        )
        where = "a map" if out.shape[1] == classes else f"{out.dim() - 1} dims"
        return Misfit(
            "output",
            f"outputs {tuple(out.shape[1:])} per image, its {classes} class scores in {where}, "
            f"not a ({classes},) logits vector; {fix}",
        )
    if out.dim() == 0 or out.dim() == 1 and out.numel() == PROBE * classes > PROBE:
        # `.flatten()`, `.view(-1)`, nn.Flatten(0): the images' scores in one row; shape (): a
        # .sum() or .mean() over the batch (a (B,) output, one score an image, is a head short
        # of classes: "give it K outputs")
        fix = "e.g. .flatten(1) instead of .flatten() or .view(-1)" if out.dim() else "not a sum"
        return Misfit(
            "output",
            f"returns shape {tuple(out.shape)} for {PROBE} images, no batch dim; return (B, "
            f"{classes}) logits, {fix}",
        )
    if out.dim() != 2 or out.shape[1] != classes:
        one_dim = out.shape[1] if out.dim() == 2 else None
        return Misfit("classes", f"outputs {tuple(out.shape[1:])} per image", one_dim)
    row_sums = out.float().sum(1)
    if classes > 1 and (out >= 0).all() and torch.allclose(row_sums, torch.ones_like(row_sums)):
        return Misfit(
            "softmax",
            "ends in a softmax (its outputs are probabilities: ≥ 0, summing to 1), and cnnlab "
            "applies softmax itself (in the loss and in predictions), so it would be applied "
            "twice; remove the final softmax and return the logits",
        )
    return None


def _located_forward(model: nn.Module, x: Tensor) -> tuple[Any, str | None]:
    """(model(x), None), or (None, where and why) when the forward raises: the innermost
    module still running then (forward hooks do not run for a forward that raised, so the
    modules entered and not left are the chain down to the failure)."""
    running: list[tuple[str, nn.Module, tuple]] = []

    def before(name: str) -> Callable:
        return lambda module, args: running.append((name, module, args))

    def after(module: nn.Module, args: Any, out: Any) -> None:
        running.pop()

    modules = list(model.named_modules())
    try:
        with (
            Hooks().before((m, before(n)) for n, m in modules),
            Hooks().after((m, after) for _, m in modules),
        ):
            return model(x), None
    except Exception as error:  # the user's forward: any error is theirs to fix
        name, module, args = running[-1] if running else ("", model, (x,))
        got = ", ".join(_shape_text(a) for a in args) or "no tensor"
        where = f"layer {name}, {_a(type(module).__name__)}," if name else (
            f"{type(module).__name__}.forward,"
        )  # fmt: skip
        text = " ".join(str(error).split())[:300] or "(no message)"
        kind = "" if isinstance(error, RuntimeError) else f"{type(error).__name__}: "
        return None, f"{kind}{text} (in {where} given {got})"


def _shape_text(value: Any) -> str:
    if isinstance(value, Tensor):
        return "×".join(map(str, value.shape)) or "a scalar"
    return type(value).__name__


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
