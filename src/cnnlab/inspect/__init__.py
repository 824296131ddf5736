"""Looking inside any nn.Module: the one capture layer that diagnose, explain, report, the lab
and the explorer are built on (forward order, captured activations and gradients, batches,
the user's model left as it was, a fast inference copy)."""

from cnnlab.inspect.capture import (
    Capture,
    OutputSelector,
    as_float,
    batches,
    check_images,
    default_layer,
    forward,
    inference_copy,
    inspecting,
    is_spatial,
    layer_names,
    resolve_layer,
    resolve_target,
    select_logits,
    spatial_layers,
    trace,
)

__all__ = [
    "Capture",
    "OutputSelector",
    "as_float",
    "batches",
    "check_images",
    "default_layer",
    "forward",
    "inference_copy",
    "inspecting",
    "is_spatial",
    "layer_names",
    "resolve_layer",
    "resolve_target",
    "select_logits",
    "spatial_layers",
    "trace",
]
