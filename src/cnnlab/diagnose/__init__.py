"""Diagnose a CNN: dead ReLU units, gradient flow, activation statistics (notes §4.2-4.3).

Works on any `nn.Module` classifier:

* `dead_units(model, data)`: channels after a ReLU-family activation that never fire (§4.3);
* `activation_stats(model, data)`: mean, spread, range and saturated share of every
  activation's output (§4.2);
* `gradient_flow(model, batches)`: the loss's gradient at each layer's weights, and whether it
  vanishes, explodes or does not flow at all (§4.2); `train_mode_logits(model, x)`: whether
  its train-mode forward gives the logits (Inception's gives aux logits too);
* `findings(...)`: what to try; `epoch_diagnostics(model, x, y)`: what training logs.

Activations are found where they are *computed* (`cnnlab.inspect.ActivationSites`:
`nn.ReLU(inplace=True)`, `F.relu`, `x.relu()`, `torch.sigmoid`, ...), each named by its site
(`features.2`, `block.gelu()`, `layer1.0.relu #2` for a module's second call); what each
activation does (zero floor, ReLU family, saturation band) comes from the one activation
table, `cnnlab.design.activations`. Every function leaves the model as it was
(`cnnlab.inspect.preserved`: mode, hooks, `requires_grad`, BatchNorm running statistics and
the torch RNG state); gradients are taken with `torch.autograd.grad`, so no parameter's
`.grad` is touched. A TorchScript module runs its calls where no hook sees them: the
activations inside it are not seen, and each result's `.hidden` names such modules.
"""

from cnnlab.design.activations import ACTIVATION_MODULES
from cnnlab.diagnose.advice import Finding, epoch_diagnostics, findings
from cnnlab.diagnose.gradients import GradientFlow, GradLayer, gradient_flow, train_mode_logits
from cnnlab.diagnose.units import (
    RELU_FAMILY,
    SATURATION,
    ActivationLayer,
    ActivationStats,
    DeadLayer,
    DeadUnits,
    Recording,
    activation_stats,
    dead_units,
    hidden_line,
)

__all__ = [
    "ACTIVATION_MODULES",
    "RELU_FAMILY",
    "SATURATION",
    "ActivationLayer",
    "ActivationStats",
    "DeadLayer",
    "DeadUnits",
    "Finding",
    "GradLayer",
    "GradientFlow",
    "Recording",
    "activation_stats",
    "dead_units",
    "epoch_diagnostics",
    "findings",
    "hidden_line",
    "gradient_flow",
    "train_mode_logits",
]
