"""Looking inside any `nn.Module` image classifier: the one capture layer that diagnose,
explain, the report, the lab and the explorer are built on. Layers are named by their dotted
module name (`features.3`), as PyTorch names them.

Which function for what:

* leave the user's model as it was ........ `with preserved(model):` (eval mode, frozen
  parameters; `train=True` for train mode; mode, requires_grad, hooks, and after train mode
  buffers and RNG, restored). `inspecting(model)` is the same. `unwrap(model)` looks
  through DDP, nn.DataParallel and torch.compile wrappers (`inner_name` strips their
  `module.` / `_orig_mod.` from a layer's name; `unwrap_layer` gives both);
  `decompiled(model)` replaces every torch.compile wrapper inside by the module it holds
  (what opening a run does);
  `reloaded(model)` after weights changed in place (drops eval-mode caches of them).
* run it on images and read the logits ..... `check_images(x)`, `check_values(model)` (not
  on the meta device), `forward(model, x, output)`
  ((B, K) logits; `output=` picks them from a tuple/dict), `select_logits`,
  `resolve_target(target, logits)` (None: the predicted class), `needs_gradients(name)`.
* is it a classifier of these images ........ `classifier_misfit(model, (C, H, W), K)`: None,
  or why not (the layer that raised and the shapes it got, a tuple output, a softmax end).
  `alone.batch_note(model, (C, H, W), title)`: a note when an image's eval-mode logits
  change with the rest of its batch (a BatchNorm without running statistics).
* name layers, in forward order ............ `layer_names`, `resolve_layer`, `trace(model, x)`
  ((name, output shape) in forward order), `image_maps` (the layers whose output is a
  feature map of the image: not a pad's, not a window attention's, not attention weights),
  `spatial_layers`, `map_dims` (those and the maps held channels last, (B, H, W, C),
  with the dim of their channels), `is_spatial`, `default_layer` (the last spatial one that
  gets a gradient from the logits: Grad-CAM's default; `feeding_maps` all of them),
  `first_called(model, nn.Conv2d, x)`,
  `with CallOrder(model, names) as order:` (every call, in order), `layer_calls` and
  `spatial_calls` (each call labelled as the summary labels it: `relu`, `relu #2`, read
  with `Capture(..., calls=True)`), `is_leaf(module)` and
  `weight_code(model)` (a parametrized layer is one layer; what computes its weight is none).
* where the images are in an output ........ `batch_axes(model, x)` (a sequence-first
  LSTM's (T, B, F): 1, found by forwards of 2 and 1 images; `call_axes` with each call's
  shape), `images_first(t, batch, channel)` (images on dim 0, channels on dim 1).
* a layer's own output and its gradient ..... `with Capture(model, [name]) as cap:` then
  `cap.tensor(name)`; correct under later in-place ops (the clone trick), `leaf=True` to
  backpropagate only down to it, `inputs=True` for its input, `transform=` to reduce it.
* gradients through activation checkpoints . `gradients(out, inputs, restore)`
  (`torch.autograd.grad`, also through `checkpoint(..., use_reentrant=True)`, which
  refuses `.grad()`), `through_reentrant(out)`, `require_graph(t, layer, method)` (a layer
  computed without autograd, named), `backward_checked()` (a forward's in-place change that
  breaks the backward, said with the fix); `Capture(..., grads=True)` reads a layer's gradient
  where a reentrant checkpoint recomputes it.
* every activation where it is computed ..... `with ActivationSites(model, on_call):`
  (modules, `F.relu`, `x.sigmoid()`, ..., each call named by its site).
* hooks of your own ........................ `with Hooks().after([(module, hook)]):` (and
  `.before` for pre-hooks): registered all or none, removed on leaving the block, raised or
  not; the classes above are built on it.
* data in batches ............................ `batches(data, n)` ((x, y) from a tensor, a pair,
  an ImageSet or an iterable), `first_batch(data)` (a generator's first batch put back),
  `as_float(x, preprocess)`, `device_of(model)`,
  `dtype_of(model)`.
* speed ...................................... `inference_copy(model, keep)` (BatchNorm folded
  into convs, channels-last weights), `run_fast(fn, model, x)` (fn on that copy, falling
  back to the default layout where a model cannot run channels-last).
"""

from cnnlab.inspect.batch_axis import batch_axes, call_axes, images_first
from cnnlab.inspect.batches import as_float, batches, device_of, dtype_of, first_batch
from cnnlab.inspect.calls import layer_calls, spatial_calls
from cnnlab.inspect.capture import Capture
from cnnlab.inspect.checkpoints import (
    backward_checked,
    gradients,
    require_graph,
    through_reentrant,
)
from cnnlab.inspect.fast import fold_batchnorm, inference_copy, run_fast
from cnnlab.inspect.first import first_called
from cnnlab.inspect.hooks import Hooks, scripted_whole
from cnnlab.inspect.logits import (
    Misfit,
    OutputSelector,
    check_images,
    check_values,
    classifier_misfit,
    forward,
    resolve_target,
    select_logits,
)
from cnnlab.inspect.maps import (
    graph_fed_maps,
    image_maps,
    is_spatial,
    map_dims,
    per_image,
    spatial_layers,
)
from cnnlab.inspect.order import (
    CallOrder,
    call_channel_dims,
    channel_dim,
    channel_dims,
    is_leaf,
    layer_names,
    resolve_layer,
    trace,
    weight_code,
)
from cnnlab.inspect.preserve import (
    compiled_names_as,
    decompiled,
    inner_name,
    inspecting,
    needs_gradients,
    preserved,
    reloaded,
    unwrap,
    unwrap_layer,
)
from cnnlab.inspect.reached import default_layer, feeding_maps, zero_gradient
from cnnlab.inspect.sites import ActivationSites

__all__ = [
    "ActivationSites",
    "CallOrder",
    "channel_dim",
    "call_channel_dims",
    "channel_dims",
    "Capture",
    "Hooks",
    "Misfit",
    "OutputSelector",
    "as_float",
    "backward_checked",
    "batch_axes",
    "batches",
    "call_axes",
    "check_images",
    "check_values",
    "classifier_misfit",
    "compiled_names_as",
    "decompiled",
    "default_layer",
    "feeding_maps",
    "graph_fed_maps",
    "per_image",
    "device_of",
    "dtype_of",
    "first_called",
    "first_batch",
    "fold_batchnorm",
    "forward",
    "gradients",
    "image_maps",
    "images_first",
    "inference_copy",
    "inner_name",
    "inspecting",
    "is_leaf",
    "is_spatial",
    "layer_calls",
    "layer_names",
    "map_dims",
    "needs_gradients",
    "preserved",
    "reloaded",
    "require_graph",
    "resolve_layer",
    "resolve_target",
    "run_fast",
    "scripted_whole",
    "select_logits",
    "spatial_calls",
    "spatial_layers",
    "through_reentrant",
    "trace",
    "unwrap",
    "unwrap_layer",
    "weight_code",
    "zero_gradient",
]
