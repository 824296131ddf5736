"""`inputs.check_one_image_steps` makes its one-image probe where the model is: on the
device of its first parameter or buffer (CPU for a model with none) and in its floating
dtype. It was made on the CPU in float32, so a model on CUDA failed with torch's device
error instead of the batch-of-one rule's. The meta device stands in for CUDA here: the
probe of a meta model is a meta image."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.train.inputs import check_one_image_steps


class Seen(nn.Module):
    """Records the device and dtype of what it is given; its own tensor placed as asked."""

    def __init__(self, tensor: torch.Tensor | None, as_buffer: bool = False):
        super().__init__()
        if tensor is not None and as_buffer:
            self.register_buffer("held", tensor)
        elif tensor is not None:
            self.weight = nn.Parameter(tensor)
        self.seen: list[tuple[torch.device, torch.dtype]] = []

    def forward(self, x):
        self.seen.append((x.device, x.dtype))
        return x.flatten(1)


@pytest.mark.parametrize(
    ("tensor", "as_buffer", "where"),
    [
        (torch.zeros(2, device="meta"), False, (torch.device("meta"), torch.float32)),
        (torch.zeros(2, device="meta"), True, (torch.device("meta"), torch.float32)),
        (torch.zeros(2, dtype=torch.float64), False, (torch.device("cpu"), torch.float64)),
        (None, False, (torch.device("cpu"), torch.float32)),
    ],
    ids=["meta parameter", "meta buffer", "float64", "no tensors"],
)
def test_the_probe_image_is_made_where_the_model_is(tensor, as_buffer, where):
    model = Seen(tensor, as_buffer)
    check_one_image_steps(model, (1, 4, 4), per_rank=1)
    assert model.seen == [where]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_batchnorm_in_the_models_dtype_gets_the_batch_of_one_rule(dtype):
    """torch's ValueError, said as ConfigError naming --batch-size 2, for a float64 model
    as for a float32 one; a float32 image raised the dtype's RuntimeError as a traceback."""
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(2)
    ).to(dtype)
    with pytest.raises(ConfigError, match="use --batch-size 2"):
        check_one_image_steps(model, (1, 8, 8), per_rank=1)
    check_one_image_steps(model, (1, 8, 8), per_rank=2)  # not this rule's: no probe
