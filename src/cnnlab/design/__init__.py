"""Design: the architecture before any training.

* ``spec``: the YAML/JSON language, validated once (``spectext`` reads the text safely,
  ``arguments`` holds the value rules, ``quote`` keeps messages short);
* ``kinds``: one record per layer kind (arguments, shape rule, builder, example);
* ``activations``: the one activation table every part reads;
* ``build``: spec -> nn.Module; ``layers``: the modules cnnlab adds to PyTorch's;
* ``reference``: NumPy sliding dot products; ``summary``: per-layer facts and design lints for
  a spec or any module; ``presets/``: specs shipped with cnnlab, named and found by
  ``presetfiles`` (torch-free, for the command's help).

Formulas live in cnnlab.geometry, below this package.
"""
