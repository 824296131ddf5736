"""Design: the architecture before any training.

spec (the YAML/JSON language and its validation), build (spec -> nn.Module), layers
(ConcatPool2d, heads, the activation table), reference (NumPy sliding dot products) and
summary (per-layer facts and design lints for a spec or any module). Formulas live in
cnnlab.geometry, below this package.
"""
