"""Public alias: `cnnlab.layers` is the module :mod:`cnnlab.design.layers` (one object)."""

import sys

from cnnlab.design import layers

sys.modules[__name__] = layers
