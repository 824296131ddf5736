"""Look inside any image classifier (notes §3.2, §5.3, §5.4).

Attribution: `saliency`, `smoothgrad`, `gradcam` (method "gradcam" | "gradcam++").
Units and layers: `activation_maximization`, `linear_probe`, `filters`, `feature_maps`,
`effective_receptive_field`. Every function takes any `nn.Module`, names layers by their dotted
module name, and leaves the model as it found it (mode, hooks, requires_grad).
"""

from cnnlab.errors import ExplainError
from cnnlab.explain.actmax import ActMaxResult, activation_maximization
from cnnlab.explain.erf import ERF, effective_receptive_field
from cnnlab.explain.features import feature_maps, filters, overlay, save_grid
from cnnlab.explain.gradcam import gradcam
from cnnlab.explain.probe import linear_probe
from cnnlab.explain.saliency import saliency, smoothgrad
from cnnlab.inspect import layer_names

__all__ = [
    "ERF",
    "ActMaxResult",
    "ExplainError",
    "activation_maximization",
    "effective_receptive_field",
    "feature_maps",
    "filters",
    "gradcam",
    "layer_names",
    "linear_probe",
    "overlay",
    "saliency",
    "save_grid",
    "smoothgrad",
]
