"""Which maps the logits get a gradient from, and so Grad-CAM's default layer. The autograd
graph of the shape probe (`order.graph_fed_maps`) tells which maps the logits are computed
from by its edges alone; a
CvT's last block computes its patch tokens' queries for its patch outputs, which the logits,
read from the class token, never use: the graph reaches them through a concatenation, their
gradient is zero, and Grad-CAM there is a blank map. Only numbers tell: one real forward and
backward of one image."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cnnlab.errors import ExplainError
from cnnlab.inspect.capture import Capture
from cnnlab.inspect.checkpoints import gradients
from cnnlab.inspect.hooks import scripted_whole
from cnnlab.inspect.logits import OutputSelector, check_images, forward
from cnnlab.inspect.maps import graph_fed_maps, tensors_kept
from cnnlab.inspect.preserve import preserved, unwrap
from cnnlab.inspect.tokens import class_mix, deeper_layer


def default_layer(
    model: nn.Module, x: Tensor, output: OutputSelector = None, maps: Sequence[str] | None = None
) -> str:
    """The last module, in forward order, whose output is a feature map of the image with
    H·W > 1 (`image_maps`, DESIGN.md) that the logits are computed from and get a gradient
    from (`feeding_maps`): for a plain CNN its last conv block's activation, for a ResNet its
    last stage; never a padding layer, attention weights, or a side branch's map; at its last
    call (`feeding_maps`). Where the tokens of a vision transformer come after it (its only
    map the patch embedding), the input of its last attention (`tokens.deeper_layer`).
    maps: `feeding_maps(model, x, output)` where the caller has them already (their search
    is a forward and a backward of x[:1]); None: found here."""
    spatial = feeding_maps(model, x, output) if maps is None else list(maps)
    if not spatial:
        raise ExplainError(
            "the model has no layer with a spatial (B, C, H, W) output, H·W > 1"
            + scripted_whole(model)
        )
    return deeper_layer(model, x, spatial[-1], output)


def feeding_maps(model: nn.Module, x: Tensor, output: OutputSelector = None) -> list[str]:
    """`order.graph_fed_maps` (the maps the logits' graph reaches, each labelled by its last
    call) less those whose gradient is zero (`zero_gradient`, one forward and backward of
    x[:1]): a CvT's last queries, which only its patch outputs read. All of them where every
    one's is zero."""
    labels = graph_fed_maps(model, x, output)
    blank = zero_gradient(unwrap(model), x, labels, output)
    return [label for label in labels if label not in blank] or labels


def zero_gradient(
    model: nn.Module, x: Tensor, labels: Sequence[str], output: OutputSelector = None
) -> set[str]:
    """The labels (calls, `relu #2`) whose output gets a gradient of zeros only from
    r·logits (`class_mix`), in one eval-mode forward and backward of x[:1]. A label that gets
    no gradient at all (a torch.no_grad() backbone) is not among them, nor is any where the
    backward fails (an op without one): nothing is told then."""
    x = check_images(x)[:1].detach().clone().requires_grad_(True)
    with (
        preserved(model),
        tensors_kept(model),
        Capture(model, labels, grads=True, calls=True) as cap,
        torch.enable_grad(),
    ):
        try:
            logits = forward(model, x, output)
            objective = (logits * class_mix(logits.shape[1], logits)).sum()
            if objective.requires_grad:
                gradients(objective, [x])
        except (ExplainError, RuntimeError):
            return set()
    return {
        name for name, (_, grad) in cap.gradients.items() if grad is not None and not grad.any()
    }
