"""Where a traced forward is, in the words of its errors: the running layer, the shape it
got, the last row before it, and the input size that would run where the trace can tell. A
mixin of `trace.Tracer` (its `stack`, `rows` and `image`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from cnnlab.design.summary.render import call_label, shape_text
from cnnlab.errors import SpecError

_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)
_IDS = (
    "the layer takes integer token ids, not an image: summary runs the model on a float "
    "(C, H, W) image, so no input size fits a model of ids"
)


def _one_value(x) -> bool:
    """Whether a batch-norm input holds one value per channel (B = 1, no positions): the
    failure a BatchNorm on batch statistics meets, not another (a channel count)."""
    return isinstance(x, Tensor) and x.dim() >= 2 and x.numel() == x.shape[1]


_BATCH_STATS = (
    "the layer keeps no running statistics (track_running_stats=False), so in eval mode too "
    "it normalizes by its batch, and one image gives it one value per channel: no input size "
    "fits; construct it with track_running_stats=True (the default)"
)


class Where:
    """The tracer's place in the forward, for error messages."""

    @property
    def layer(self) -> str:
        """Dotted name of the innermost running module; the model itself is "(model)"."""
        return (self.stack[-1][2] if self.stack else None) or "(model)"

    def where(self) -> str:
        """'layer 3 (Conv2d) on a 1×3×32×32 input', for error messages; a container that
        failed in its own code, between its layers (a `.view` in a model's forward), adds
        the last of them that ran: ', after layer c (Conv2d) gave 1×8×14×14'."""
        if not self.stack:
            return "layer (model)" + self._after("")
        module, x, name = self.stack[-1]
        with torch._C.DisableTorchFunction():
            got = f" on a {'×'.join(map(str, x.shape))} input" if isinstance(x, Tensor) else ""
        return f"layer {self.layer} ({type(module).__name__}){got}" + self._after(name)

    def input_fix(self) -> str | None:
        """Where the first layer to run is a conv that takes other channels than the input
        has (a gray input for an RGB model): the input size it takes; where an embedding got
        float values (ImageGPT's colour-cluster ids), or a BatchNorm without running
        statistics failed (one value per channel of one image): that no image size runs;
        else None."""
        module, x, _ = self.stack[-1] if self.stack else (None, None, None)
        if isinstance(module, _EMBEDDINGS) and isinstance(x, Tensor) and x.is_floating_point():
            return _IDS
        if isinstance(module, _BatchNorm) and module.running_mean is None and _one_value(x):
            return _BATCH_STATS  # (torch: 'Expected more than 1 value per channel')
        if self.rows or not self.stack:
            return None
        if not isinstance(module, nn.modules.conv._ConvNd) or not isinstance(x, Tensor):
            return None
        c, size = module.in_channels, tuple(x.shape[1:])
        if x.dim() < 3 or size[0] == c:
            return None
        fits = shape_text((c, *size[1:]))
        return f"the first layer takes {c} channels, the input has {size[0]}: try {fits}"

    def _after(self, name: str | None) -> str:
        """The last row inside the running module `name` ("" or None: the model), if any
        (a leaf has none: its own row comes when it returns)."""
        row = self.rows[-1] if self.rows else None
        if row is None or (name and not row.name.startswith(name + ".")):
            return ""
        label, shape = call_label(row.name, row.call), shape_text((1, *row.output_shape))
        return f", after layer {label} ({row.kind}) gave {shape}"

    def too_small(self, size: tuple[int, ...], err: SpecError) -> SpecError:
        """The error of a window (conv, pool) wider than its (H, W) `size` map: the layer, the
        map and, besides the window's own fixes in `err`, the input: a model brought whole (a
        MONAI DenseNet-121 on 28×28 images) is fixed by a larger image, not by editing it."""
        size_text, image = "×".join(map(str, size)), "×".join(map(str, self.image))
        return SpecError(
            f"{self.where()}: on a {size_text} map, {err}, or a larger input image than {image}"
        )
