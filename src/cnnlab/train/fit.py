"""The model to train (`ModelChoice`) against the data, checked before a step: something to
train, the image-size options, the input shape, the class count and the logits, a graph to
train through, and the memory layout it trains in. A model that runs laid out NCHW but not
channels-last (the tutorials' `x.view(-1, 16 * 5 * 5)` after a conv) trains NCHW:
`check_fit` returns why, and `layout_note` says it (config.json records channels_last false,
so resume and report agree).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnlab.design.spec import preset_path
from cnnlab.errors import ConfigError, DataError, SpecError
from cnnlab.inspect import Misfit, classifier_misfit, preserved
from cnnlab.inspect.preserve import eager_stance
from cnnlab.train.config import TrainConfig
from cnnlab.train.lazy import materialize
from cnnlab.train.source import Parameters, outputs_fix
from cnnlab.train.unhooked import unhooked, user_hooks


@dataclass
class ModelChoice:
    """The model to train and how config.json records it (`record`, see train.source)."""

    model: nn.Module
    spec: Any  # the Spec of a spec run, else None
    record: dict[str, Any]
    title: str  # for messages: "spec 'fast'", "model nets.py:make_net", "model Sequential"
    given_input: tuple[int, int, int] | None = None  # code's --input C,H,W
    preset: str | None = None  # the preset's name when the spec is one: no file of the user's
    # code's factory's parameters (train.source.Parameters): outputs_fix names the one that
    # sets the class count
    parameters: Parameters | None = None
    # config.json's record of a model trained NCHW because channels-last failed
    # ({"channels_last_refused": why}, `make_splits`), else {}
    layout: dict[str, str] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) a spec fixes or code was given (--input); None: the data's own."""
        return tuple(self.spec.input) if self.spec is not None else self.given_input

    @property
    def spec_text(self) -> str | None:
        return self.spec.to_yaml() if self.spec is not None else None


def check_fit(choice: ModelChoice, input_shape, classes, config: TrainConfig) -> str | None:
    """Data shape, class count and the image-size options against the model: SpecError,
    DataError or ConfigError naming the fix, or None, or, where the model fails only laid
    out channels-last (config.channels_last), that failure ('... (in Net.forward, given
    2×3×32×32)'): the model is left NCHW and is to train so (`layout_note`). Lazy layers
    (nn.LazyConv2d, nn.LazyLinear) first take their shapes from the data's (lazy.py)."""
    materialize(choice.model, input_shape, choice.title)  # before anything reads them
    _check_trainable(choice)
    _check_sizes(input_shape, config)
    if choice.input_shape is not None and tuple(input_shape) != choice.input_shape:
        raise DataError(
            f"the data has {'×'.join(map(str, input_shape))} images but {choice.title} "
            f"expects input {list(choice.input_shape)}"
        )
    k, refused = len(classes), None
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    misfit, title = _misfit(choice, input_shape, k, layout)
    # channels-last is the culprit when the model runs laid out NCHW: it trains NCHW. What
    # fails NCHW too (a tuple, a class count, another shape) is the problem to tell
    if misfit is not None and misfit.kind == "run" and config.channels_last:
        refused, layout = misfit.why, torch.contiguous_format
        misfit, title = _misfit(choice, input_shape, k, layout)
    if misfit is None:
        _check_graph(choice, input_shape, layout)
        return refused
    raise _misfit_error(choice, misfit, title, input_shape, k)


def layout_note(title: str, refused: str | None) -> list[str]:
    """The note of a model trained NCHW because channels-last failed (`check_fit`): which
    call failed, and the change that lets it train channels-last; none otherwise."""
    if refused is None:
        return []
    why, _, where = refused.rpartition(" (in ")
    where = where.split(" given ")[0].rstrip(",") if why else ""
    why = (why or refused).split(" (")[0].split(". ")[0]
    fix = (
        "calling .reshape or .flatten(1) there in place of .view"
        if ".view" in why or "view size" in why
        else "making that call take channels-last tensors"
    )
    return [
        f"{title} trained NCHW, not channels-last (NHWC, the default layout for speed): "
        f"{f'in {where}, ' if where else ''}{why} on channels-last images; {fix} would let "
        "it train channels-last, faster (config.json: channels_last false)"
    ]


def _check_sizes(input_shape, config: TrainConfig) -> None:
    """--translate and --tta-shift pad by reflection: less than the image's shorter side."""
    side = min(input_shape[1:])
    size = "×".join(map(str, input_shape[1:]))
    for option, pixels in (("translate", config.translate), ("tta_shift", config.tta_shift)):
        if pixels >= side:
            raise ConfigError(
                f"{option} {pixels} must be smaller than the {side}-px side of the {size} "
                f"images (reflect padding); use at most {side - 1}"
            )


def _misfit_error(choice: ModelChoice, misfit: Misfit, title: str, input_shape, k: int):
    """The SpecError of `misfit`, with its fix."""
    size = "×".join(map(str, input_shape))
    if misfit.kind == "weights":  # no input would do: their dtype or device is the matter
        return SpecError(f"{title}: {misfit.why}")
    if misfit.kind == "run":  # a module of the user's that does not take this input
        return SpecError(f"{title} cannot run on {size} images: {misfit.why}{_other(choice)}")
    if misfit.kind == "classes":
        fix = (
            _preset_fix(choice.preset, k) if choice.preset
            else f"end the spec with `linear: {k}`" if choice.spec
            else outputs_fix(choice.record, k, misfit.outputs, choice.parameters)
            if choice.record.get("kind") == "code"
            else f"give it {k} outputs"
        )  # fmt: skip
        return SpecError(f"{title} {misfit.why} but the data has {k} classes; {fix}")
    return SpecError(f"{title} {misfit.why}")


def _preset_fix(name: str, k: int) -> str:
    """How to give a preset `k` outputs: its YAML is in the package (where load_spec reads
    it); "end the spec with" told a preset user of a spec file they do not have."""
    path = preset_path(name)
    return (
        f"a preset is fixed: copy its spec {path} to {name}-{k}.yaml, change its last "
        f"`linear:` to `linear: {k}` and train that file (`cnnlab train {name}-{k}.yaml ...` "
        f"instead of --preset {name})"
    )


def _check_trainable(choice: ModelChoice) -> None:
    """Some parameter must require a gradient: with none, the first backward raised torch's
    'element 0 of tensors does not require grad' as a traceback, after the run directory was
    made (a model frozen whole, e.g. one trained elsewhere and frozen for inference)."""
    params = list(choice.model.parameters())
    if any(p.requires_grad for p in params):
        return
    why = "every parameter has requires_grad=False" if params else "it has no parameters"
    raise SpecError(
        f"{choice.title} has nothing to train ({why}); unfreeze the layers to train "
        "(requires_grad_(True)), or evaluate weights trained elsewhere with cnnlab import"
    )


def _check_graph(choice: ModelChoice, input_shape, layout) -> None:
    """The logits of the user's model, in training mode with gradients on, must depend on a
    parameter that trains: a forward under torch.no_grad() or inference_mode(), or one that
    detaches its logits, raised torch's 'element 0 of tensors does not require grad' as a
    traceback at the first backward, after the run directory was made. Checked after the
    model has passed `_misfit` (it runs and gives logits); a spec's network always has one.
    The logits are `_check_forward`'s: the user's forward hooks see that forward only when
    the model needs them (a forward reading what its hook stored reads, without the hook, a
    feature an earlier no-grad forward left, with no gradient)."""
    if choice.spec is not None:
        return
    x = torch.zeros(2, *input_shape).contiguous(memory_format=layout)
    logits = _check_forward(choice.model, x, every=False)
    if not logits.requires_grad:
        raise SpecError(
            f"{choice.title}'s logits carry no gradient to its parameters (its forward runs "
            "under torch.no_grad() or torch.inference_mode(), or detaches them), so nothing "
            "would train; let forward keep the graph, or evaluate weights trained elsewhere "
            "with cnnlab import"
        )


def untrained_note(choice: ModelChoice, input_shape) -> list[str]:
    """A note naming the trainable layers the train-mode logits on two zero images of
    `input_shape` do not reach in their autograd graph (`unreached_parameters`): they would
    keep their first weights through every step, and nothing said so. A
    torch.utils.checkpoint(use_reentrant=True) block whose input needs no gradient (it
    follows a frozen stem) is cut off so, with only torch's warning; so are a layer the
    forward does not call and an auxiliary head it does not return. [] for a spec, or where
    the graph cannot tell (`check_fit` has run the forward). The user's forward hooks see
    that forward only where the model needs them (`_check_forward`)."""
    if choice.spec is not None:
        return []
    cut = [n.rpartition(".")[0] or n for n in unreached_parameters(choice.model, input_shape) or []]
    layers = list(dict.fromkeys(cut))
    if not layers:
        return []
    shown = ", ".join(layers[:4]) + (f" and {len(layers) - 4} more" if len(layers) > 4 else "")
    return [
        f"{choice.title}: {shown} get{'s' * (len(layers) == 1)} no gradient from the logits in "
        f"training mode, so {'its' if len(layers) == 1 else 'their'} weights will not change "
        "(a torch.utils.checkpoint with use_reentrant=True whose input needs no gradient, "
        "after a frozen layer, cuts its block off: pass use_reentrant=False; or the forward "
        "does not use them)"
    ]


def unreached_parameters(model: nn.Module, input_shape) -> list[str] | None:
    """The names of `model`'s trainable parameters outside the autograd graph of its
    train-mode output on two zero images of `input_shape` (C, H, W), on its device: those a
    backward leaves with .grad None (`graph_walk`). None where that cannot be told. The
    untrained-layer note reads it."""
    walk = graph_walk(model, input_shape)
    return None if walk is None else walk.unreached


@dataclass(frozen=True)
class Walk:
    """What `graph_walk` read from a train-mode forward's autograd graph: the trainable
    parameters it does not reach, by name, and whether it holds a reentrant
    torch.utils.checkpoint (whose block's parameters get their gradients from a second,
    nested backward: DDP's find_unused_parameters marks them ready twice, `distributed.wrap`)."""

    unreached: list[str] | None  # None: not known (a checkpointed plain function's)
    reentrant: bool


def graph_walk(model: nn.Module, input_shape, hooked: bool = False) -> Walk | None:
    """The `Walk` of `model`'s train-mode output on two zero images of `input_shape`
    (C, H, W), on its device (`_check_forward`: the user's forward hooks set aside unless
    the model needs them, or `hooked`: DDP's options, which a wrong answer breaks). Read
    from the graph (`_reached`), no backward run, so no parameter hook of the user's fires:
    torch.autograd.grad fired each parameter's register_hook once more (a hook counting
    steps counted one), and raised at a reentrant checkpoint ('not
    compatible with .grad()'). Modes, buffers and RNG are put back (`preserved`). None where
    that cannot be told: a forward that fails or gives no tensor; `unreached` None after a
    reentrant checkpoint of a plain function. The untrained-layer note and DDP's options
    (`distributed.wrap`) read it."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        return Walk([], reentrant=False)
    x = torch.zeros(2, *input_shape, device=named[0][1].device)
    try:
        found = _reached(_check_forward(model, x, every=True, hooked=hooked))
    except Exception:  # the user's code may raise anything; training's own checks speak
        return None
    if found is None:
        return None
    reached, reentrant = found
    unreached = None if reached is None else [n for n, p in named if id(p) not in reached]
    return Walk(unreached, reentrant)


def _check_forward(model: nn.Module, x: torch.Tensor, every: bool, hooked: bool = False):
    """`model`'s train-mode output on `x` for training's checks (`_check_graph`,
    `graph_walk`), as the steps' forward gives it: first with the user's forward hooks set
    aside (a hook counting training's forwards counted these, one raising stopped train);
    again with them, and that output, where the first leaves doubt (`_settles`: it raised,
    gave no tensor or one without gradient, or, if `every`, one whose graph misses a
    trainable parameter) and the model has hooks of the user's (`user_hooks`). A forward
    that reads what its own hook stored (`self.feat = o` in the hook, an FPN's taps) reads,
    without the hook, what an earlier forward left: nothing, or a feature with no graph (a
    no-grad forward's) or another forward's. The hooks then see one check forward. Where the
    hooked forward raises but the first gave a tensor (a hook refusing zero images, which
    the steps never feed), the first is the answer; both raising, the hooked one's error.
    `hooked`: with hooks of the user's, their forward's answer, not the hook-free one's: a
    hook that detaches its output (a backbone frozen by a hook) cuts a graph the hook-free
    forward finds whole, so DDP's unused-parameter search missed the backbone and failed at
    step 1. The hooks then see this forward."""
    if hooked and user_hooks(model):
        try:
            return _train_forward(model, x, hooks=True)
        except Exception:  # as below: a hook refusing zero images; the hook-free answer
            pass
    try:
        out = _train_forward(model, x)
    except Exception:  # retried as training runs it: its error, if any, is raised then
        out = None
    if _settles(model, out, every) or not user_hooks(model):
        return out if out is not None else _train_forward(model, x, hooks=True)
    try:
        return _train_forward(model, x, hooks=True)
    except Exception:
        if out is None:
            raise
        return out


def _settles(model: nn.Module, out, every: bool) -> bool:
    """Whether `out` is a tensor with a gradient and, if `every`, an autograd graph reaching
    every trainable parameter of `model` (`_reached`): the user's hooks have nothing to add."""
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return False
    if not every:
        return True
    reached = _reached(out)[0]
    trainable = (p for p in model.parameters() if p.requires_grad)
    return reached is not None and all(id(p) in reached for p in trainable)


def _train_forward(model: nn.Module, x: torch.Tensor, hooks: bool = False):
    """`model`'s train-mode output on `x` with gradients on: modes, buffers and RNG put back
    (`preserved`), the user's forward hooks set aside and put back unless `hooks`
    (`unhooked`), compiled code run eagerly (no graph compiled for 2 images)."""
    with preserved(model, train=True, requires_grad=None), torch.enable_grad():
        with eager_stance(), unhooked(model) if not hooks else nullcontext():
            return model(x)


def _reached(logits) -> tuple[set[int] | None, bool] | None:
    """The ids of the parameters `logits`' autograd graph leads to: its AccumulateGrad nodes'
    variables, and the parameters of the module a reentrant checkpoint recomputes in the
    backward (its node's `run_function`), None after a reentrant checkpoint of a plain
    function, whose parameters are not known; and whether there is such a node. None for no
    tensor."""
    if not isinstance(logits, torch.Tensor):
        return None
    seen, reached, reentrant = set(), set(), False
    todo = [logits.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):  # AccumulateGrad: a leaf that gets a gradient
            reached.add(id(node.variable))
        run = getattr(node, "run_function", None)  # torch.utils.checkpoint's reentrant node
        if run is not None:
            owner = run if isinstance(run, nn.Module) else getattr(run, "__self__", None)
            if not isinstance(owner, nn.Module):
                return None, True
            reached.update(id(p) for p in owner.parameters())
            reentrant = True
        todo.extend(next_node for next_node, _ in node.next_functions)
    return reached, reentrant


def _other(choice: ModelChoice) -> str:
    """How to give the user's model other images: --input for code (the CLI's and
    ModelSource's), the data converted for a module passed in (train has no input option)."""
    kind = choice.record.get("kind")
    if kind == "code" and not choice.input_shape:
        return "; if it takes other images, give --input C,H,W (the data is converted)"
    if kind == "module":
        return (
            "; if it takes other images, train on the data converted to them: "
            "cnnlab.data.load_splits(data, channels=C, size=(H, W)), or for ImageSets of "
            "your own cnnlab.data.conform(images, channels=C, size=(H, W))"
        )
    return ""


def _misfit(choice: ModelChoice, input_shape, classes: int, layout) -> tuple[Misfit | None, str]:
    """classifier_misfit of the model laid out in `layout` (a conv's output follows its
    weight's layout as well as its input's), in eval mode, then, for the user's code, in
    training mode as training calls it (an Inception-style net returns aux logits too; a
    spec's network returns logits only); its mode and BatchNorm statistics kept. With the
    title to name it by."""
    choice.model.to(memory_format=layout)
    with preserved(choice.model):
        misfit = classifier_misfit(choice.model, input_shape, classes, memory_format=layout)
    if misfit is not None or choice.spec is not None:
        return misfit, choice.title
    with preserved(choice.model, train=True):
        misfit = classifier_misfit(choice.model, input_shape, classes, memory_format=layout)
    return misfit, f"{choice.title} in training mode"
