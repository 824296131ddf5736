"""Each call of a layer, labelled as the summary labels its rows and the explorer its maps:
`relu` for the first call of module `relu`, `relu #2` for its second (`call_label`). A
module called more than once in a forward (one ReLU module reused, a shared block) has one
output per call; `Capture(..., calls=True)` reads each by its label.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnlab.design.summary.render import call_label
from cnnlab.inspect.logits import OutputSelector, check_images, forward
from cnnlab.inspect.maps import call_map_shape, is_spatial, map_dims
from cnnlab.inspect.order import CallOrder
from cnnlab.inspect.preserve import preserved, unwrap


def layer_calls(
    model: nn.Module, x: Tensor, output: OutputSelector = None
) -> list[tuple[str, str, tuple]]:
    """(label, module name, output shape) of every call of a submodule with a tensor output,
    in the order the calls finish, from one no-grad, eval-mode forward of x (finite float
    images (B, ...), B ≥ 1): each call labelled as the summary labels its rows and the
    explorer its maps (`call_label`: `relu` for the first call of module `relu`, `relu #2` for
    its second; every call counts, tensor output or not). `Capture(..., calls=True)` reads a
    call by its label."""
    x, model = check_images(x, flat=True), unwrap(model)  # named as `layer_names` names them
    with preserved(model, requires_grad=None), CallOrder(model) as order, torch.no_grad():
        forward(model, x, output, logits=False)
    counts: dict[str, int] = {}
    found = []
    for name, shape in order.calls:
        counts[name] = counts.get(name, 0) + 1
        if shape is not None:
            found.append((call_label(name, counts[name]), name, shape))
    return found


def spatial_calls(model: nn.Module, x: Tensor, output: OutputSelector = None) -> list[str]:
    """The labels (`layer_calls`) of every call of a `map_dims` layer whose output is a
    (B, C, H, W) map with H·W > 1 (a (B, H, W, C) one read with its channels moved to dim 1,
    as that call held them: `map_dims(calls=True)`), in the order of the calls: a module
    called three times (one ReLU module reused) gives its three maps, `relu`, `relu #2`,
    `relu #3`."""
    dims = map_dims(model, x, output, calls=True)
    calls = layer_calls(model, x, output)
    return [
        label
        for label, _, shape in calls
        if label in dims and is_spatial(call_map_shape(label, shape, dims))
    ]
