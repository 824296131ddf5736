"""Activation maximization (notes §5.4): gradient ascent on the input to find an image that
makes one channel fire as strongly as possible (Erhan et al. 2009; regularizers as in
Yosinski et al. 2015 and Olah et al. 2017, "Feature Visualization").

Objective of image i: channel channels[i] at `layer` read at its centre unit (default: one
neuron, as §5.4 says) or averaged over its spatial map (objective="mean"); for a flat (B, F)
layer, unit channels[i]. Minus the regularizers. All channels are optimised
together, one image per channel, in one batch.

`activation_maximization`'s knobs, in the order the method uses them:
- input_size (C, H, W): default the shape of `data`'s images. value_range (lo, hi): images
  stay inside the range real inputs take (pixels are clamped after each step; a Fourier
  image is lo + (hi−lo)·sigmoid(·)); default: the min and max of `data` when given, else
  unbounded.
- restarts: random starts per channel (drawn from `seed`), optimised side by side (one batch
  of len(channels)·restarts images); the best is kept. A ReLU channel that is zero
  everywhere at the start gets no gradient, so a single start can stay at zero.
- Adam(lr) for `steps` steps on pixels (or a 1/f-scaled Fourier spectrum with fourier=True).
  Each step: the images are rolled by a random shift of up to `jitter` pixels (robustness
  to translation; the centre objective follows its unit by shift / jump, so what is left
  is the sub-unit part of the shift), the loss is −activation + l2·mean(x²) + tv·total
  variation (for an increasing activation module, e.g. nn.ReLU, its input is the activation
  maximised); every `blur_every` steps pixel images are blurred with a Gaussian of std
  `blur` (0 = off).
- data: Tensor (N, C, H, W), (images, labels) or iterable of batches (float images
  normalised as for training, or any images with `preprocess`, e.g. `run.preprocess`); with
  it each has data_max (the strongest activation, same objective, any data image gives that
  channel) and ratio = activation / data_max (nan where data_max ≤ 0: a channel the data
  never activates, or a layer whose outputs are negative, where a ratio means nothing).
- progress: progress(steps done, steps, "activation maximisation") after each step, then
  per batch of `data` ("strongest activations in the data").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.design.activations import activation_of
from cnnlab.design.summary.render import call_label
from cnnlab.errors import ExplainError
from cnnlab.explain.input_size import check_size
from cnnlab.inspect import (
    CallOrder,
    Capture,
    OutputSelector,
    as_float,
    backward_checked,
    batches,
    check_images,
    check_values,
    device_of,
    dtype_of,
    first_batch,
    forward,
    images_first,
    needs_gradients,
    preserved,
    require_graph,
    resolve_layer,
)
from cnnlab.inspect.batch_axis import layer_axes
from cnnlab.inspect.names import split_call
from cnnlab.inspect.preserve import unwrap_layer
from cnnlab.inspect.progress import Progress, batch_count


@dataclass(frozen=True)
class ActMaxResult:
    """images: (N, C, H, W), one per channel; activation: (N,) their objective (centre unit or
    channel mean, see `objective`);
    data_max: (N,) the strongest activation any image of the data set gives that channel and
    ratio = activation / data_max (None without data)."""

    layer: str
    objective: str
    channels: tuple[int, ...]
    images: Tensor
    activation: Tensor
    data_max: Tensor | None = None
    ratio: Tensor | None = None


OBJECTIVES = ("centre", "mean")


def maximise_input(module: nn.Module) -> bool:
    """True for a monotone activation module (the activation table's `monotone`): maximising
    its input maximises its output, and the input has a gradient where a ReLU's output is
    flat zero (a unit dead at the start would otherwise stay dead)."""
    activation = activation_of(module)
    return activation is not None and activation.monotone


def ascent_target(model: nn.Module, layer: str, x: Tensor, output: OutputSelector) -> tuple:
    """(the layer whose tensor the ascent reads, read at its input?): an increasing activation
    module's input (`maximise_input`); a block whose output is its last activation module's
    (a ResNet stage ending in its ReLU) that activation's input, the same maximiser; else the
    layer's output. Read at the block's output, a channel zero at the start got no gradient
    and stayed at 0 (a stage of Hugging Face's ResNet: 'activation 0' where the data reach
    1.77, 1.43 by its ReLU's input). layer: a call's label (`block #2`); the activation's
    is the label of its call that ended last before that call of the block."""
    module = resolve_layer(model, layer)
    if maximise_input(module):
        return layer, True
    base, call = split_call(layer, dict(model.named_modules()))
    inner = [f"{base}.{n}" for n, m in module.named_modules() if n and maximise_input(m)]
    if not inner:
        return layer, False
    with CallOrder(model, [base, *inner]) as order, torch.no_grad():
        forward(model, x[:1], output, logits=False)
    last = _last_inside(order.calls, base, call)
    if last is None:
        return layer, False
    with Capture(model, [layer, last], calls=True) as cap, torch.no_grad():
        forward(model, x[:1], output, logits=False)
    found = cap.outputs.get(last), cap.outputs.get(layer)
    if any(t is None for t in found) or found[0].shape != found[1].shape:
        return layer, False
    return (last, True) if torch.equal(*found) else (layer, False)


def _last_inside(calls: list[tuple[str, Any]], base: str, call: int) -> str | None:
    """The label (`call_label`) of the call that ended last before call `call` of `base`
    among `calls` ((name, shape) in the order they ended: children before their parent),
    if it is not `base`'s own; None where `base` makes fewer calls."""
    counts: dict[str, int] = {}
    previous = None
    for name, _ in calls:
        counts[name] = counts.get(name, 0) + 1
        if name == base and counts[name] == call:
            return previous
        previous = None if name == base else call_label(name, counts[name])
    return None


def channel_activation(
    acts: Tensor, channels: Tensor, objective: str = "centre", shift: tuple[int, int] = (0, 0)
) -> Tensor:
    """Row i's activation of channel channels[i]: (N, K, h, w), (N, K, L) or (N, K) → (N,).
    objective "centre": the unit at (h // 2, w // 2), moved by `shift` units (clamped to the
    map); of L positions (a transformer's tokens or an LSTM's steps, channels moved first;
    a 1-d map), the one at L // 2; "mean": the mean over the positions."""
    picked = acts[torch.arange(len(channels), device=acts.device), channels]  # (N, h, w) | (N,)
    if picked.dim() == 1:
        return picked
    if objective == "centre" and picked.dim() == 2:  # (N, L): unit_shift gives no shift
        return picked[:, picked.shape[1] // 2]
    if objective == "centre":
        h, w = picked.shape[1:]
        i = min(max(h // 2 + shift[0], 0), h - 1)
        j = min(max(w // 2 + shift[1], 0), w - 1)
        return picked[:, i, j]
    return picked.flatten(1).mean(1)


def unit_shift(acts: Tensor, image: Tensor, dy: int, dx: int) -> tuple[int, int]:
    """Where the centre unit's patch went when the image was rolled by (dy, dx) pixels: a
    conv map moves with its input, by (dy, dx) / jump units, jump ≈ image size / map size
    (§3.2). Following it keeps jitter a robustness prior, not a target that wanders off a
    shallow unit's field (a 5-px field under ±2-px jitter otherwise ends at ~0× data max)."""
    if acts.dim() != 4:
        return (0, 0)
    jh = max(1, round(image.shape[2] / acts.shape[2]))
    jw = max(1, round(image.shape[3] / acts.shape[3]))
    return (round(dy / jh), round(dx / jw))


def total_variation(x: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring pixels, per image: (N, C, H, W) → (N,)."""
    dh = (x[:, :, 1:] - x[:, :, :-1]).abs().flatten(1).mean(1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Depthwise 3×3.. Gaussian blur with reflect padding, (N, C, H, W) → same."""
    radius = max(1, round(2 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius,) * 4, mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class _Fourier(nn.Module):
    """Image = inverse real FFT of a spectrum scaled by 1/frequency (Olah et al. 2017): the
    steps then change low frequencies as easily as high ones ("decorrelated" in space; no
    colour decorrelation here). With a value range (lo, hi) the image is lo + (hi−lo)·sigmoid(·)."""

    def __init__(self, shape: tuple[int, ...], gen: torch.Generator, lo=None, hi=None):
        super().__init__()
        self.range, self.dtype = (lo, hi), torch.float32  # dtype: the images' (_start_image)
        n, c, h, w = shape
        fy = torch.fft.fftfreq(h)[:, None]
        fx = torch.fft.rfftfreq(w)[None, :]
        self.register_buffer("scale", 1.0 / torch.sqrt(fx**2 + fy**2).clamp(min=1.0 / max(h, w)))
        self.size = (h, w)
        spectrum = torch.randn((n, c, h, w // 2 + 1, 2), generator=gen) * 0.01
        self.spectrum = nn.Parameter(spectrum)

    def forward(self) -> Tensor:
        spec = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spec, s=self.size, norm="ortho")
        lo, hi = self.range
        image = image if lo is None else lo + (hi - lo) * torch.sigmoid(image)
        return image.to(self.dtype)  # float32 steps (an FFT of float16 is refused on the CPU)


class _Pixels(nn.Module):
    """The image itself; with a value range, uniform noise in it at the start."""

    def __init__(self, shape: tuple[int, ...], gen: torch.Generator, lo=None, hi=None):
        super().__init__()
        self.dtype = torch.float32  # the images' (_start_image)
        if lo is None:
            start = torch.randn(shape, generator=gen)
        else:
            start = lo + (hi - lo) * torch.rand(shape, generator=gen)
        self.pixels = nn.Parameter(start)

    def forward(self) -> Tensor:
        return self.pixels.to(self.dtype)  # float32 steps: float16 ones round away small steps


def _data_max(
    model: nn.Module,
    layer: str,
    channels: Tensor,
    objective: str,
    data: Any,
    preprocess,
    output,
    axes: tuple[int, int] = (0, 1),
    progress: Progress | None = None,
) -> Tensor:
    """For each requested channel, the max over the data set of its activation (same
    objective), from one no-grad forward per batch: (N,). axes: its images' and channels' dims.
    progress: progress(batches done, batches, "strongest activations in the data")."""
    best = torch.full((len(channels),), -torch.inf)
    total = batch_count(data, 256)
    if progress is not None:
        progress(0, total, "strongest activations in the data")
    with Capture(model, [layer], calls=True) as cap, torch.no_grad():
        for done, (x, _) in enumerate(batches(data, 256), 1):
            x = check_images(as_float(x, preprocess), flat=True)
            forward(model, x, output, logits=False)
            acts = images_first(cap.tensor(layer), *axes)
            per_image = torch.stack(
                [
                    channel_activation(acts, channels.expand(len(acts), -1)[:, i], objective)
                    for i in range(len(channels))
                ],
                1,
            )  # (B, N)
            best = torch.maximum(best, per_image.amax(0).float())
            if progress is not None:
                progress(done, total, "strongest activations in the data")
    return best


def _layer_output(
    model: nn.Module, layer: str, x: Tensor, output: OutputSelector, axes=(0, 1)
) -> Tensor:
    """The layer's own output on x, no grad, its images and channels (`axes`) on dims 0, 1."""
    with Capture(model, [layer], calls=True) as cap, torch.no_grad():
        forward(model, x, output, logits=False)
    return images_first(cap.tensor(layer), *axes)


@torch.no_grad()
def _regularize_pixels(pixels: Tensor, step: int, blur: float, every: int, lo, hi) -> None:
    """Blur every `every` steps (Yosinski et al. 2015), then project into the value range."""
    if blur > 0 and (step + 1) % every == 0:
        pixels.copy_(gaussian_blur(pixels, blur))
    if lo is not None:
        pixels.clamp_(lo, hi)  # projected gradient ascent


def _ascend(
    model: nn.Module,
    layer: str,
    image: nn.Module,
    runs: Tensor,
    gen: torch.Generator,
    output: OutputSelector,
    regularize: Callable[[int], None],
    *,
    steps: int,
    lr: float,
    jitter: int,
    l2: float,
    tv: float,
    objective: str,
    axes: tuple[int, int] = (0, 1),
    progress: Progress | None = None,
) -> None:
    """The gradient ascent of `activation_maximization` on image's parameters: `steps` Adam
    steps, each on a randomly rolled image, loss = −activation + l2·mean(x²) + tv·TV.
    axes: the dims of the layer's output that hold its images and channels. progress: per step."""
    layer, pre = ascent_target(model, layer, image().detach(), output)
    with Capture(model, [layer], inputs=pre, calls=True) as cap, torch.enable_grad():
        opt = torch.optim.Adam(image.parameters(), lr=lr)
        if progress is not None:
            progress(0, steps, "activation maximisation")
        for step in range(steps):
            img = image()  # (R·N, C, H, W)
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist()
            moved = torch.roll(img, (dy, dx), (2, 3)) if jitter else img
            forward(model, moved, output, logits=False)
            require_graph(cap.tensor(layer), layer, "activation maximisation")
            acts = images_first(cap.tensor(layer), *axes)
            act = channel_activation(acts, runs, objective, unit_shift(acts, img, dy, dx))
            reg = l2 * img.pow(2).flatten(1).mean(1) + tv * total_variation(img)
            opt.zero_grad()
            with backward_checked():
                (reg - act).sum().backward()
            opt.step()
            regularize(step)
            if progress is not None:
                progress(step + 1, steps, "activation maximisation")


def _checked(
    model, layer, channels, steps, objective, restarts, input_size, value_range, sample, preprocess
) -> tuple[Tensor, tuple[int, ...], tuple[float, float] | None]:
    """activation_maximization's arguments checked: (channels (N,), input_size (C, H, W),
    value_range), the last two read from `sample` (data's first images) where not given. A
    meta model is refused: the images are made on the model's device."""
    check_values(model)
    resolve_layer(model, layer)
    if steps < 1:
        raise ExplainError(f"activation_maximization needs steps ≥ 1, got {steps}")
    if objective not in OBJECTIVES:
        raise ExplainError(f"unknown objective {objective!r}; choose one of: {OBJECTIVES}")
    if input_size is not None:
        check_size(model, input_size)
    if sample is not None:
        sample = check_images(as_float(sample, preprocess), flat=True)
        input_size = input_size or tuple(sample.shape[1:])
        if value_range is None:
            value_range = (sample.min().item(), sample.max().item())
    if input_size is None:
        raise ExplainError("activation_maximization needs input_size=(C, H, W) or data")
    if value_range is not None and not value_range[0] < value_range[1]:  # clamped to one value
        raise ExplainError(
            f"value_range is (low, high) with low < high, got {tuple(value_range)} (without "
            "value_range: the min and max of data); give the range real images take"
        )
    chans = _channel_indices(channels)
    if chans.numel() == 0:
        raise ExplainError(f"channels is empty; give at least one channel of layer {layer!r}")
    if restarts < 1:
        raise ExplainError(f"activation_maximization needs restarts ≥ 1, got {restarts}")
    return chans, tuple(input_size), value_range


def _channel_indices(channels) -> Tensor:
    """channels (an int, a sequence or a tensor of whole numbers) as a (N,) int64 tensor;
    ExplainError for a fraction (no channel 1.5 exists; a cast would pick another) or no
    number."""
    try:
        given = torch.as_tensor(channels).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ExplainError(f"channels must be channel indices (ints), got {channels!r}") from error
    if given.dtype == torch.bool or given.is_complex() or not torch.equal(given, given.round()):
        raise ExplainError(f"channels must be whole channel indices, got {given.tolist()}")
    return given.long()


def _checked_axes(model: nn.Module, layer: str, x: Tensor, chans: Tensor, output) -> tuple:
    """The dims of `layer`'s images (a sequence-first LSTM's (T, B, H): 1) and channels (a
    ConvNeXt's, an LSTM's units: the last) on x; ExplainError for a channel outside them."""
    axes = layer_axes(model, x, layer, output)
    size = _layer_output(model, layer, x, output, axes).shape[1]
    bad = chans[(chans < 0) | (chans >= size)]
    if bad.numel():
        raise ExplainError(
            f"channel {bad[0].item()} is outside layer {layer!r}'s channels 0..{size - 1}"
        )
    return axes


def activation_maximization(
    model: nn.Module,
    layer: str,
    channels: int | Sequence[int],
    *,
    steps: int = 128,
    lr: float = 0.1,
    jitter: int = 2,
    l2: float = 1e-3,
    tv: float = 1e-2,
    blur: float = 0.0,
    blur_every: int = 4,
    fourier: bool = False,
    objective: str = "centre",
    input_size: tuple[int, int, int] | None = None,
    value_range: tuple[float, float] | None = None,
    data: Any = None,
    preprocess=None,
    restarts: int = 4,
    seed: int = 0,
    output: OutputSelector = None,
    progress: Progress | None = None,
) -> ActMaxResult:
    """Images (len(channels), C, H, W) maximising each channel's activation at `layer` (its
    centre unit, or its spatial mean with objective="mean"), with that activation and, given
    `data`, the data's strongest: an ActMaxResult. channels: indices (one: an int). layer: a
    module's name (its first call in the forward) or a call's label, `relu #2`, as the
    summary labels calls; a call past the last is refused, naming the calls. The model runs
    in eval mode, its own mode restored after. The keywords, the method's knobs, are
    described in the module docstring (help(cnnlab.explain.actmax)): one text with the
    objective they tune."""
    needs_gradients("activation_maximization")
    model, layer = unwrap_layer(model, layer)
    data, sample = (None, None) if data is None else first_batch(data, 256)  # a generator's too
    chans, input_size, value_range = _checked(model, layer, channels, steps, objective,
                                              restarts, input_size, value_range, sample,
                                              preprocess)  # fmt: skip
    runs = chans.repeat(restarts)  # (R·N,): row r·N + i optimises channel i
    image, gen = _start_image((len(runs), *input_size), value_range, fourier, seed, model)
    regularize = _regularizer(image, blur, blur_every, value_range)
    with preserved(model):
        axes = _checked_axes(model, layer, image().detach(), chans, output)
        _ascend(model, layer, image, runs, gen, output, regularize, steps=steps, lr=lr,
                jitter=jitter, l2=l2, tv=tv, objective=objective, axes=axes,
                progress=progress)  # fmt: skip
        images, activation = _best_start(
            model, layer, image, runs, restarts, objective, output, axes
        )
        data_max, ratio = _against_data(
            model, layer, chans, objective, activation, data, preprocess, output, axes, progress
        )
    return ActMaxResult(
        layer, objective, tuple(chans.tolist()), images.detach(), activation, data_max, ratio
    )


def _start_image(
    shape: tuple[int, ...], value_range, fourier: bool, seed: int, model: nn.Module
) -> tuple[nn.Module, torch.Generator]:
    """The image module the ascent optimises, `shape` (R·N, C, H, W) drawn from `seed`: a
    1/f-scaled spectrum (fourier) or pixels, inside value_range, on `model`'s device and
    giving images in its dtype (the model takes no other, and the caller gives no images to
    convert); and that generator, from which the ascent's jitter draws."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = value_range if value_range is not None else (None, None)
    image = _Fourier(shape, gen, lo, hi) if fourier else _Pixels(shape, gen, lo, hi)
    image.dtype = dtype_of(model)
    return image.to(device_of(model)), gen


def _regularizer(image: nn.Module, blur: float, every: int, value_range) -> Callable[[int], None]:
    """What follows each step: a pixel image blurred every `every` steps and clamped into
    value_range (`_regularize_pixels`); a Fourier image is left as it is (its sigmoid keeps
    the range)."""
    lo, hi = value_range if value_range is not None else (None, None)

    def regularize(step: int) -> None:
        if isinstance(image, _Pixels):
            _regularize_pixels(image.pixels, step, blur, every, lo, hi)

    return regularize


def _best_start(
    model, layer, image, runs: Tensor, restarts: int, objective: str, output, axes
) -> tuple[Tensor, Tensor]:
    """(images (N, C, H, W), activation (N,)): per channel, the best of its `restarts` starts
    (rows r·N + i of `image`), as the final images score."""
    images = image().detach()  # (R·N, C, H, W)
    final = channel_activation(_layer_output(model, layer, images, output, axes), runs, objective)
    activation, best = final.view(restarts, -1).max(0)  # (N,): the best start per channel
    n = len(runs) // restarts
    return images.view(restarts, n, *images.shape[1:])[best, torch.arange(n)], activation


def _against_data(
    model, layer, chans, objective, activation, data, preprocess, output, axes, progress
) -> tuple[Tensor | None, Tensor | None]:
    """(data_max (N,), ratio = activation / data_max), or (None, None) without data."""
    if data is None:
        return None, None
    data_max = _data_max(model, layer, chans, objective, data, preprocess, output, axes, progress)
    return data_max, data_ratio(activation, data_max)


def data_ratio(activation: Tensor, data_max: Tensor) -> Tensor:
    """activation / data_max per channel, nan where data_max <= 0: a ratio says something
    only against a positive best (a channel the data never activates)."""
    return torch.where(data_max > 0, activation / data_max.clamp(min=1e-30), torch.nan)
