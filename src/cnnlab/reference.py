"""Public alias: `cnnlab.reference` is the module :mod:`cnnlab.design.reference` (one object)."""

import sys

from cnnlab.design import reference

sys.modules[__name__] = reference
