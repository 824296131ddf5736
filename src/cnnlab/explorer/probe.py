"""One image through the network, every number kept: the explorer's view of a model.

`Network.of(model, input_shape)` finds, once per model, the convolutions in forward order (by
module type, wherever the model registers them), the norm (BatchNorm2d, GroupNorm or
InstanceNorm2d: `norms`) and activation that directly follow each one (checked by value:
norm(conv output) is the norm's output), and each
conv's receptive field on the input (§3.2). `Network.probe(x)` runs one image and keeps each
conv's own input and every spatial layer's output, so a click on any activation is answered
without another forward pass: `dot_product` (§2.1) reads the captured input, slides the
conv's filter to the clicked position with `reference.trace_conv`, and compares the sum plus
bias with the activation the network computed.

A module called more than once in a forward pass (a shared block applied to two inputs, one
ReLU module reused) has one entry per call, labelled as the summary labels its rows: `name`
for the first call, `name #2` for the second, ... (`label`). Maps, chains, receptive fields
and the dot product's input are each the call's own.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cnnlab import geometry
from cnnlab.design.reference import trace_conv
from cnnlab.design.summary.render import call_label as label
from cnnlab.explain import ExplainError
from cnnlab.explorer.norms import is_norm, norm_step
from cnnlab.explorer.slices import (
    ChannelSlice,
    Fields,
    Pads,
    Sources,
    channel_slice,
    input_channels,
    padding_sides,
    window,
    window_field,
)
from cnnlab.inspect import (
    CallOrder,
    Hooks,
    forward,
    inspecting,
    is_leaf,
    is_spatial,
    map_dims,
    weight_code,
)
from cnnlab.inspect.hooks import output_tensor, with_output
from cnnlab.inspect.maps import call_map_shape
from cnnlab.inspect.preserve import is_compiled_inner
from cnnlab.layers import ConcatPool2d

# a conv's padding_mode as numpy pads: torch's 'reflect' omits the edge as numpy's does
PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
WINDOWS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, ConcatPool2d)  # modules sliding a window (§2.2)


@dataclass(frozen=True)
class ConvChain:
    """A conv call and the calls directly after it: a norm (`bn`: a BatchNorm2d, GroupNorm or
    InstanceNorm2d, `norms.NORMS`), then an activation (None: absent), each named by its
    call's label (`label`).

    padding: (top, bottom, left, right) zeros, as the conv pads; rf: (height, width)
    receptive field of the conv's output units on the input image (§3.2)."""

    conv: str
    bn: str | None
    act: str | None
    padding: tuple[int, int, int, int]
    rf: tuple[geometry.RF, geometry.RF]


@dataclass(frozen=True)
class Probe:
    """One image through the network: x (1, C, H, W) normalized, logits (K,), inputs[conv]
    its input (C, H, W), outputs[layer] its output (C', H', W') for every call of a map
    layer (channels moved to dim 0 where it holds them last: `Network.dims`), keyed by the
    call's label; sliced[conv] for a conv whose input is some channels of
    a larger tensor (a `torch.chunk`, `split` or slice of it): a ChannelSlice."""

    x: Tensor
    logits: Tensor
    inputs: dict[str, Tensor]
    outputs: dict[str, Tensor]
    sliced: dict[str, ChannelSlice] = dataclasses.field(default_factory=dict)


def conv_padding(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zeros the conv adds; 'same' splits like PyTorch (§2.3)."""
    (top, bottom), (left, right) = padding_sides(conv.padding, conv.kernel_size, conv.dilation)
    return top, bottom, left, right


def _window_geometry(m: nn.Module) -> geometry.LayerGeometry:
    """Kernel, stride, padding (before) and dilation of a conv or pool as (h, w) pairs."""
    padding, dilation = getattr(m, "padding", 0), getattr(m, "dilation", 1)  # ConcatPool: none
    return window(m.kernel_size, m.stride, padding, dilation)


def receptive_fields(model: nn.Module, x: Tensor) -> dict[str, tuple[geometry.RF, geometry.RF]]:
    """(height, width) receptive field of each windowed layer call's output on the input
    (§3.2), keyed by the call's label (a block applied twice sees more the second time).

    One forward pass of x (1, C, H, W) follows the data: a layer's input field is the field of
    the tensor it receives (the image, or another layer's output); a window (conv, pool)
    grows it by geometry.rf_step, any other same-size layer passes it on. A view of such a
    tensor (a `torch.chunk`, a slice) has its field: found by its storage, the last tensor
    made on it. A tensor made by a functional op (a residual `a + b`, `torch.cat`) is no
    layer's output: it gets the widest field among the tensors of its height and width made
    so far (a sum's: its widest term's). A padded tensor (F.pad, which padding modules call)
    has its input's field, shifted by the pad before each axis (`padded_field`); a window
    the forward slides itself, outside any layer (F.max_pool2d), grows it as a layer would.
    A value per image and channel computed from a map (a global pool) sees the whole map, and
    a map multiplied by it (an SE gate) sees that too (`Fields.combined`).
    """
    fields, calls = Fields(x), Counter()
    out: dict[str, tuple[geometry.RF, geometry.RF]] = {}

    def enter(m: nn.Module, args: tuple) -> None:
        fields.inside += 1  # a leaf's own ops are its hook's to follow

    def hook(name: str):
        def fn(m: nn.Module, args: tuple, y: Any) -> None:
            fields.inside -= 1
            calls[name] += 1  # every call counts, as CallOrder counts them
            if not args or not isinstance(args[0], Tensor) or not isinstance(y, Tensor):
                return
            rf = fields.of(args[0])
            if rf is None or y.dim() != 4:
                return
            if isinstance(m, WINDOWS):
                rf = window_field(rf, _window_geometry(m))
                out[label(name, calls[name])] = rf
            elif y.shape[2:] != args[0].shape[2:]:
                return  # an adaptive pool or resize: no window to follow
            fields.set(y, rf)

        return fn

    code = weight_code(model)  # parametrizations run on weights, not on the image
    leaves = [(m, hook(n)) for n, m in model.named_modules() if n and n not in code and is_leaf(m)]
    hooks = Hooks().before((m, enter) for m, _ in leaves).after(leaves)
    with hooks, inspecting(model), torch.no_grad(), Pads(fields):
        forward(model, x, logits=False)
    return out


def _follows(modules: dict[str, nn.Module], leaves: list[tuple[str, str]], at: int, test):
    """The label of the leaf call right after leaves[at] ((label, name) pairs) when
    test(its module) holds, else None."""
    if at + 1 >= len(leaves):
        return None
    call, name = leaves[at + 1]
    return call if test(modules[name]) else None


def _calls(model: nn.Module, x: Tensor) -> list[tuple[str, str, int, tuple]]:
    """(label, name, call number, output shape) of every submodule call with a tensor output,
    in the order the calls finish (children before their parent), from one no-grad pass."""
    with CallOrder(model) as order, torch.no_grad():
        forward(model, x)
    count: Counter[str] = Counter()
    found = []
    for name, shape in order.calls:
        count[name] += 1  # every call counts (the summary's numbering), tensor output or not
        if shape is not None:
            found.append((label(name, count[name]), name, count[name], shape))
    return found


def _is_activation(m: nn.Module) -> bool:
    """One of torch's activation modules (nn.ReLU, nn.GELU, ...), decided by where its type
    is defined; its place in the chain is then checked by value."""
    return type(m).__module__ == "torch.nn.modules.activation"


@dataclass(frozen=True)
class Network:
    """The explorer's map of a model: conv calls in forward order with their chains; spatial
    layers (call label -> output shape (C, H, W), H·W > 1, in forward order: the calls
    Grad-CAM takes, `relu` a module's first, `relu #2` its second); maps (label ->
    (C, H, W), every call of a layer with a 4-D output, 1×1 included, in forward order: the
    feature view and activation maximisation); calls (label -> (module name, call number)).
    (A 1×1 output in spatial, as a ResNet's AdaptiveAvgPool2d(1) or a ConvNeXt's last stage
    at 32 px, was the page's default Grad-CAM layer, and every prediction then failed.)

    A layer whose 4-D output holds its channels last (a ConvNeXt block's LayerNorm, Linear
    and GELU between its permutes: (B, H, W, C)) is spatial and a map too, read as
    `t.movedim(dim, 1)` (`inspect.map_dims`: the dim the same forward's permute put its
    channels on, never a guess from the shape), as explain's Grad-CAM and feature maps read
    it: dims (label -> that dim, for those calls only; each call's own, as one GELU module
    may act on a conv's (B, C, H, W) and on a Linear's (B, H, W, C)) moves its output in
    `probe` and in the top images, so every panel reads channel c as out[..., c]. (They
    were left out while Grad-CAM, actmax and the top images read a layer's channels on dim
    1.) A
    torch.compile'd child is one spatial layer, named as the model names it
    (`3`); its maps keep the inner module's calls too (`3._orig_mod`), as a compiled conv's
    dot product is the inner Conv2d's."""

    model: nn.Module
    input_shape: tuple[int, int, int]
    chains: tuple[ConvChain, ...]
    spatial: dict[str, tuple[int, ...]]
    maps: dict[str, tuple[int, ...]]
    calls: dict[str, tuple[str, int]]
    dims: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, model: nn.Module, input_shape: tuple[int, int, int], x: Tensor | None = None):
        """Find convs, chains, fields and spatial layers with one image x (1, C, H, W)
        (default: zeros; a sample image makes the by-value chain check more telling)."""
        x = torch.zeros(1, *input_shape) if x is None else x
        with inspecting(model):
            calls = _calls(model, x)
            # each call of the maps of the image, 1×1 included, with the dim it held channels on
            dims = map_dims(model, x, every=True, calls=True)
        calls = [(c, n, k, call_map_shape(c, s, dims)) for c, n, k, s in calls]  # (B, C, H, W)
        modules = dict(model.named_modules())
        leaves = [(call, name) for call, name, _, _ in calls if is_leaf(modules[name])]
        fields = receptive_fields(model, x)
        last: dict[str, tuple] = {}
        for _, name, _, shape in calls:  # in the order of each module's last call
            last.pop(name, None)
            last[name] = shape
        # maps of the image only: not a window attention's (windows, heads, N, N), whose out[0]
        # was the first window's, nor a padding layer's, whose border Grad-CAM upsampled with
        # the map, shrinking it towards the image's centre
        spatial = {  # every call, labelled as Grad-CAM reads it (`relu #2`: the second)
            c: tuple(s[1:])
            for c, n, _, s in calls
            if c in dims and is_spatial(s) and not is_compiled_inner(n, last)
        }
        maps = {c: tuple(s[1:]) for c, _, _, s in calls if len(s) == 4 and c in dims}
        dims = {c: dims[c] for c in maps if dims[c] != 1}  # the (B, H, W, C) calls
        chains = []
        for at, (call, name) in enumerate(leaves):
            conv = modules[name]
            if not isinstance(conv, nn.Conv2d) or call not in maps:
                continue
            bn = _follows(modules, leaves, at, is_norm)
            act = _follows(modules, leaves, at + 1 if bn else at, _is_activation)
            rf = fields.get(call, (geometry.INPUT_RF, geometry.INPUT_RF))
            chains.append(ConvChain(call, bn, act, conv_padding(conv), rf))
        named = {call: (name, k) for call, name, k, _ in calls}
        net = cls(model, tuple(input_shape), tuple(chains), spatial, maps, named, dims)
        return net._checked(net.probe(x))

    def _checked(self, probe: Probe) -> Network:
        """Keep a norm / activation in a chain only if it maps the previous output to
        its own (a residual addition in between breaks the chain there)."""
        kept = []
        for c in self.chains:
            bn, act = c.bn, c.act
            with torch.no_grad():
                out = probe.outputs
                if bn and not _maps(self.module(bn), out[c.conv], out.get(bn)):
                    bn = act = None
                if act and not _maps(self.module(act), out.get(bn or c.conv), out.get(act)):
                    act = None
            kept.append(ConvChain(c.conv, bn, act, c.padding, c.rf))
        return dataclasses.replace(self, chains=tuple(kept))

    def block_ends(self) -> list[str]:
        """Each conv block's last layer (its activation, else its norm, else the conv) and
        each activation held channels last (a ConvNeXt block's GELU, which no chain reaches:
        a LayerNorm and a Linear come between), by their calls' labels in forward order."""
        ends = {c.act or c.bn or c.conv for c in self.chains}
        ends |= {c for c in self.dims if _is_activation(self.module(c))}
        return [c for c in self.maps if c in ends]

    def module(self, call: str) -> nn.Module:
        """The module that made the call labelled `call` (`name` or `name #k`)."""
        return self.model.get_submodule(self.calls[call][0])

    def chain(self, conv: str) -> ConvChain:
        for c in self.chains:
            if c.conv == conv:
                return c
        names = ", ".join(c.conv for c in self.chains) or "(none)"
        raise ExplainError(f"{conv!r} is not a convolution of this model; convolutions: {names}")

    @torch.no_grad()
    def probe(self, x: Tensor) -> Probe:
        """One forward pass of x (1, C, H, W), keeping each conv call's input and every
        spatial call's output, by the call's label. Each is the call's own, as Capture keeps
        them, so a later in-place op cannot overwrite it: an output is kept and the forward
        goes on with a clone; an input is kept as a clone, as the model may change its own
        tensor after the conv read it (`s = side(h); h = relu_(h)`)."""
        convs = {self.calls[c.conv][0] for c in self.chains}
        names = convs | {self.calls[m][0] for m in self.maps}
        count: Counter[str] = Counter()
        inputs: dict[str, Tensor] = {}
        outputs: dict[str, Tensor] = {}
        sliced: dict[str, ChannelSlice] = {}
        made = Sources()  # the tensors the forward goes on with, for naming a chunk's source

        def before(name: str):
            def hook(m: nn.Module, args: tuple) -> Any:
                if not args or not isinstance(args[0], Tensor):
                    return None
                call = label(name, count[name] + 1)
                inputs[call] = args[0][0].clone()  # (C, H, W)
                found = channel_slice(args[0], made.whose(args[0]._base))
                if found is not None:
                    sliced[call] = found
                return None

            return hook

        def given(m: nn.Module, args: tuple) -> None:  # the model's own input: the image's
            if args and isinstance(args[0], Tensor):
                made.keep(args[0], "input")

        def after(name: str):
            def hook(m: nn.Module, args: tuple, whole: Any) -> Any:
                count[name] += 1  # every call counts, as in Network.of
                call = label(name, count[name])
                out = output_tensor(whole)  # as Network.of saw it
                if out is None or call not in self.maps:
                    return None
                outputs[call] = out.movedim(self.dims.get(call, 1), 1)[0]  # (C', H', W')
                passed = out.clone()
                made.keep(passed, call)
                return with_output(whole, passed)

            return hook

        modules = dict(self.model.named_modules())
        hooks = Hooks().before([(self.model, given)])
        hooks.before((modules[n], before(n)) for n in sorted(convs))
        with inspecting(self.model), hooks.after((modules[n], after(n)) for n in sorted(names)):
            logits = forward(self.model, x)  # which feeds the model a copy: x is kept
        return Probe(x=x, logits=logits[0].float(), inputs=inputs, outputs=outputs, sliced=sliced)


def _maps(module: nn.Module, before: Tensor | None, after: Tensor | None) -> bool:
    if before is None or after is None or before.shape != after.shape:
        return False
    with inspecting(module):
        return torch.allclose(module(before[None])[0], after, rtol=1e-4, atol=1e-5)


def unit_box(rf: tuple[geometry.RF, geometry.RF], i: int, j: int) -> dict[str, float]:
    """The input pixels unit (i, j) sees: {top, left, height, width}, unclipped (§3.2).
    The field of unit i is centred on start + i·jump and spans size pixels."""
    (h, w) = rf
    top = h.start + i * h.jump - (h.size - 1) / 2
    left = w.start + j * w.jump - (w.size - 1) / 2
    return {"top": top, "left": left, "height": h.size, "width": w.size}


def dot_product(
    net: Network, probe: Probe, conv_name: str, f: int, i: int, j: int
) -> dict[str, Any]:
    """Every number behind activation (f, i, j) of conv call `conv_name` (a label: `name`, or
    `name #2` for the conv's second call) for the probed image (§2.1).

    The conv's captured input is padded as the conv pads it (zeros, or reflected, replicated
    or wrapped for its padding_mode: a border unit of such a conv was refused, an inner one
    too), and reference.trace_conv
    slides filter f to window (i, j): products = patch · filter (C, kh, kw), output = their
    sum + bias. A dilated filter is shown with its holes as zeros (the taps it skips); a
    grouped conv reads only its group's input channels. `network` is what the model
    computed there; then the norm and activation that follow, if any.
    """
    chain = net.chain(conv_name)
    conv: nn.Conv2d = net.module(conv_name)
    win = _window_geometry(conv)  # (h, w) pairs, however the conv was given them
    out = probe.outputs[conv_name]  # (F, H', W')
    n_f, out_h, out_w = out.shape
    if not (0 <= f < n_f and 0 <= i < out_h and 0 <= j < out_w):
        raise ExplainError(
            f"activation ({f}, {i}, {j}) is outside {conv_name}'s output (F, H', W') = "
            f"({n_f}, {out_h}, {out_w})"
        )
    group = f // (conv.out_channels // conv.groups)
    per_group = conv.in_channels // conv.groups
    x = probe.inputs[conv_name][group * per_group : (group + 1) * per_group]  # (C/g, H, W)
    t, b, left, r = chain.padding
    pad = ((0, 0), (t, b), (left, r))
    xp = np.pad(x.double().numpy(), pad, mode=PAD_MODES[conv.padding_mode])  # as the conv pads
    w = _dilated(conv.weight[f].detach().double(), win.dilation)  # (C/g, kh', kw')
    bias = 0.0 if conv.bias is None else conv.bias[f].item()
    tr = trace_conv(xp, w.numpy(), bias, (0, i, j), stride=win.stride)
    value = float(out[f, i, j])
    _check_adds_up(conv_name, conv, tr, value)
    return {
        "layer": conv_name,
        "index": [f, i, j],
        "out_shape": [n_f, out_h, out_w],
        "kernel": list(win.kernel),
        "stride": list(win.stride),
        "padding": list(chain.padding),
        "padding_mode": conv.padding_mode,
        "dilation": list(win.dilation),
        "group_channels": [group * per_group, (group + 1) * per_group],
        **input_channels(probe.sliced.get(conv_name), group * per_group, per_group),
        "origin": [tr.origin[0] - t, tr.origin[1] - left],  # top-left of the window (§2.1)
        "patch": tr.patch.tolist(),
        "filter": tr.filter.tolist(),
        "products": tr.products.tolist(),
        "channel_sums": tr.products.sum((1, 2)).tolist(),
        "sum": tr.sum,
        "bias": tr.bias,
        "output": tr.output,
        "network": value,
        "field": unit_box(chain.rf, i, j),
        "chain": _chain_values(net, probe, chain, f, i, j),
    }


def _check_adds_up(conv_name: str, conv: nn.Conv2d, tr: Any, value: float) -> None:
    """ExplainError unless the traced output (its weight on its padded input, + bias) is the
    network's value: a Conv2d whose own forward changes its weight or input (BiT's weight
    standardisation, a 'same' padding made in forward) computes otherwise, and its numbers
    would not add up to what the model computed."""
    if abs(tr.output - value) > 1e-3 * (np.abs(tr.products).sum() + abs(tr.bias)) + 1e-5:
        raise ExplainError(
            f"{conv_name} ({type(conv).__name__}) does not compute conv(input, weight) + bias "
            f"as nn.Conv2d does ({tr.output:.4g} by its weight, {value:.4g} in the network): "
            "its forward changes the weight or the input, so there is no dot product to show"
        )


def _dilated(w: Tensor, dilation: tuple[int, int]) -> Tensor:
    """(C, kh, kw) -> (C, D(kh−1)+1, D(kw−1)+1): the taps spread out, zeros in the holes."""
    dh, dw = dilation
    if (dh, dw) == (1, 1):
        return w
    c, kh, kw = w.shape
    out = w.new_zeros(c, dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    out[:, ::dh, ::dw] = w
    return out


def _chain_values(net: Network, probe: Probe, chain: ConvChain, f: int, i: int, j: int) -> list:
    """[{stage, layer, value, ...}] from the conv's output through its norm and activation:
    y = (x − μ) / √(σ² + ε) · γ + β (`norms.norm_step`), then the activation of y."""
    conv_out = probe.outputs[chain.conv]
    steps = [{"stage": "conv", "layer": chain.conv, "value": float(conv_out[f, i, j])}]
    if chain.bn:
        norm = net.module(chain.bn)
        steps.append(norm_step(norm, chain.bn, conv_out, probe.outputs[chain.bn], f, i, j))
    if chain.act:
        act = net.module(chain.act)
        steps.append(
            {
                "stage": "activation",
                "layer": chain.act,
                "kind": type(act).__name__,
                "value": float(probe.outputs[chain.act][f, i, j]),
            }
        )
    return steps
