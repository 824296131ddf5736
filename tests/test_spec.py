"""cnnlab.design.spec: parsing, validation messages, round-trips, and the random-spec strategy.

`valid_specs` (also used by test_build.py) draws random valid specs and computes, on its own,
the shape after each layer and the parameter count with the textbook formulas; the spec code
under test never decides what the strategy draws.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.design.spec import Layer, load_spec, preset_names, shapes

# --- a strategy for random valid specs, with its own shape and parameter arithmetic ----------


@dataclass
class Case:
    """A random valid spec, with the shapes and parameter count the formulas predict."""

    spec: dict
    shapes: list[tuple[int, ...]]
    params: int


def _out(size: int, k: int, s: int, before: int, after: int, d: int = 1) -> int:
    """O = ⌊(I + P_before + P_after − D(K − 1) − 1)/S⌋ + 1, or 0 if the window does not fit."""
    span = size + before + after - d * (k - 1) - 1
    return span // s + 1 if span >= 0 else 0


def _pair(draw, values: st.SearchStrategy) -> tuple:
    """(spec value, (h, w)): an int for both axes, or an [h, w] list."""
    if draw(st.booleans()):
        v = draw(values)
        return v, (v, v)
    h, w = draw(values), draw(values)
    return [h, w], (h, w)


_CONV_DEFAULTS = {"kernel": 3, "stride": 1, "dilation": 1, "padding": 0, "groups": 1, "bias": True}


def _pair_of(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, list) else (v, v)


def _conv(draw, shape):
    """A conv with random arguments, each written out or left to its default."""
    c, h, w = shape
    groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if c % g == 0]))
    drawn = {
        "filters": groups * draw(st.integers(1, 3)),
        "kernel": _pair(draw, st.integers(1, 5))[0],
        "stride": _pair(draw, st.integers(1, 3))[0],
        "dilation": _pair(draw, st.integers(1, 2))[0],
        "padding": draw(st.sampled_from(["same", "valid", 0, 1, 2, [0, 2]])),
        "groups": groups,
        "bias": draw(st.booleans()),
    }
    written = {k: v for k, v in drawn.items() if k == "filters" or draw(st.booleans())}
    short = len(written) == 1 and draw(st.booleans())
    obj = {"conv": written["filters"] if short else written}
    args = {**_CONV_DEFAULTS, **written}

    (kh, kw), (sh, sw), (dh, dw) = (_pair_of(args[k]) for k in ("kernel", "stride", "dilation"))
    if args["padding"] == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)  # PyTorch: t // 2 before, the rest after
        pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    else:
        ph, pw = (0, 0) if args["padding"] == "valid" else _pair_of(args["padding"])
        pads = ((ph, ph), (pw, pw))
    f, g = args["filters"], args["groups"]
    out = (f, _out(h, kh, sh, *pads[0], dh), _out(w, kw, sw, *pads[1], dw))
    return obj, out, (kh * kw * c // g + args["bias"]) * f  # §1: (K·K·C + 1)·F, per group


def _pool(draw, shape):
    c, h, w = shape
    kind = draw(st.sampled_from(["maxpool", "avgpool", "concatpool"]))
    kernel, (kh, kw) = _pair(draw, st.integers(1, 3))
    stride, (sh, sw) = _pair(draw, st.integers(1, 3)) if draw(st.booleans()) else (None, (kh, kw))
    pad = 0
    if kind != "concatpool" and draw(st.booleans()):
        pad = draw(st.integers(0, min(kh, kw) // 2))
    args = {"kernel": kernel}
    if stride is not None:
        args["stride"] = stride
    if pad:
        args["padding"] = pad
    obj = {kind: kernel} if len(args) == 1 and draw(st.booleans()) else {kind: args}
    channels = 2 * c if kind == "concatpool" else c
    return obj, (channels, _out(h, kh, sh, pad, pad), _out(w, kw, sw, pad, pad)), 0


def _elementwise(draw, shape):
    """Activations, batchnorm, dropout: any rank, shape unchanged."""
    obj = draw(
        st.sampled_from(["relu", "gelu", "sigmoid", "tanh", "batchnorm", "leaky_relu", "elu"])
        | st.builds(lambda p: {"dropout": p}, st.sampled_from([0.0, 0.1, 0.5]))
        | st.builds(lambda a: {"leaky_relu": a}, st.sampled_from([0.01, 0.2, -0.1]))
        | st.builds(lambda a: {"elu": {"alpha": a}}, st.sampled_from([0.5, 1, 2.0]))
        | st.just({"gelu": "tanh"})
    )
    params = 2 * shape[0] if obj == "batchnorm" else 0  # weight and bias per channel
    return obj, shape, params


def _residual(draw, shape, depth):
    body, out, params = [], shape, 0
    for _ in range(draw(st.integers(1, 3))):
        drawn = _map_layer(draw, out, depth + 1) if len(out) == 3 else _flat_layer(draw, out)
        if drawn is None:
            continue
        obj, out, p = drawn
        body.append(obj)
        params += p
    if not body or len(out) != len(shape):
        return None
    if out != shape:  # a projection shortcut: 1×1 conv with a stride that fits, or linear
        for size, target in zip(shape[1:], out[1:], strict=True):
            if not any((size - 1) // s + 1 == target for s in range(1, size + 1)):
                return None  # no 1×1 conv maps size to target
        norm = "batchnorm" in body  # then the projection has BN and no bias
        params += (shape[0] + (not norm)) * out[0] + 2 * out[0] * norm
    return {"residual": body}, out, params


def _map_layer(draw, shape, depth=0):
    """One layer on (C, H, W) maps, or None when the drawn one would not fit."""
    options = ["conv", "conv", "pool", "elementwise"] + (["residual"] if depth < 2 else [])
    choice = draw(st.sampled_from(options))
    if choice == "conv":
        drawn = _conv(draw, shape)
    elif choice == "pool":
        drawn = _pool(draw, shape)
    elif choice == "residual":
        drawn = _residual(draw, shape, depth)
    else:
        drawn = _elementwise(draw, shape)
    if drawn is None or min(drawn[1]) < 1 or drawn[1][0] > 24:
        return None
    return drawn


def _flat_layer(draw, shape):
    if draw(st.booleans()):
        return _elementwise(draw, shape)
    features = draw(st.integers(1, 12))
    bias = draw(st.booleans())
    obj = {"linear": features} if bias else {"linear": {"features": features, "bias": False}}
    return obj, (features,), (shape[0] + bias) * features


@st.composite
def valid_specs(draw, max_layers: int = 7) -> Case:
    """A random valid spec: feature layers on small maps, then a head (gap/flatten + linear)."""
    shape = (draw(st.integers(1, 4)), draw(st.integers(3, 16)), draw(st.integers(3, 16)))
    spec = {"name": "random", "input": list(shape), "layers": []}
    out_shapes, params = [], 0

    def add(drawn):
        nonlocal shape, params
        obj, shape, p = drawn
        spec["layers"].append(obj)
        out_shapes.append(shape)
        params += p

    for _ in range(draw(st.integers(0, max_layers))):
        drawn = _map_layer(draw, shape)
        if drawn is not None:
            add(drawn)
    head = draw(st.sampled_from(["gap", "flatten", "adaptiveconcatpool"]))
    if head == "adaptiveconcatpool":
        size = draw(st.integers(1, min(shape[1:])))
        add(({"adaptiveconcatpool": size}, (2 * shape[0], size, size), 0))
        head = "flatten"
    add((head, (shape[0],) if head == "gap" else (shape[0] * shape[1] * shape[2],), 0))
    for _ in range(draw(st.integers(0, 3))):
        drawn = _flat_layer(draw, shape) if draw(st.booleans()) else _residual(draw, shape, 1)
        if drawn is not None:
            add(drawn)
    classes = draw(st.integers(1, 10))
    add(({"linear": classes}, (classes,), (shape[0] + 1) * classes))  # the logits
    return Case(spec, out_shapes, params)


# --- valid specs -------------------------------------------------------------------------------

DESIGN_EXAMPLE = """
name: fmnist-small
input: [1, 28, 28]          # C, H, W
layers:
  - conv: {filters: 32, kernel: 3, padding: same}    # stride 1, bias true by default
  - batchnorm
  - relu
  - maxpool: 2                                        # kernel 2, stride = kernel
  - conv: {filters: 64, kernel: 3}
  - leaky_relu: 0.01
  - concatpool: 2
  - residual: [ {conv: {filters: 128, kernel: 3, padding: same}}, batchnorm, relu ]
  - gap
  - dropout: 0.2
  - linear: 10
"""


def test_design_example_shapes_by_hand():
    """DESIGN.md's example, shapes worked out by hand with O = ⌊(I − K + 2P)/S⌋ + 1 (§2.2)."""
    spec = load_spec(DESIGN_EXAMPLE)
    assert spec.name == "fmnist-small" and spec.input == (1, 28, 28)
    assert [layer.kind for layer in spec.layers][:4] == ["conv", "batchnorm", "relu", "maxpool"]
    assert shapes(spec) == [
        (32, 28, 28), (32, 28, 28), (32, 28, 28), (32, 14, 14),  # same conv, bn, relu, pool
        (64, 12, 12), (64, 12, 12), (128, 6, 6),  # valid conv 14-3+1, concatpool doubles C
        (128, 6, 6), (128,), (128,), (10,),
    ]  # fmt: skip


def test_short_and_long_forms_mean_the_same():
    short = load_spec({"input": [3, 8, 8], "layers": [{"maxpool": 2}, {"leaky_relu": 0.1}]})
    long = load_spec(
        {
            "input": [3, 8, 8],
            "layers": [
                {"maxpool": {"kernel": 2, "stride": 2, "padding": 0}},
                {"leaky_relu": {"slope": 0.1}},
            ],
        }
    )
    assert short == long
    assert short.layers[0].args == {"kernel": 2, "stride": 2, "padding": 0}


def test_defaults_are_filled_and_args_are_read_only():
    layer = load_spec({"input": [1, 8, 8], "layers": [{"conv": 4}]}).layers[0]
    assert dict(layer.args) == {
        "filters": 4, "kernel": 3, "stride": 1, "padding": 0, "dilation": 1, "groups": 1,
        "bias": True,
    }  # fmt: skip
    with pytest.raises(TypeError):
        layer.args["filters"] = 8  # type: ignore[index]
    assert hash(layer) == hash(Layer("conv", dict(layer.args)))


def test_padding_valid_is_zero_and_equal_pairs_collapse():
    a = load_spec({"input": [1, 8, 8], "layers": [{"conv": {"filters": 2, "padding": "valid"}}]})
    b = load_spec({"input": [1, 8, 8], "layers": [{"conv": {"filters": 2, "kernel": [3, 3]}}]})
    assert a == b


def test_sources_dict_path_json_text_preset(tmp_path: Path):
    spec = load_spec(DESIGN_EXAMPLE)
    (tmp_path / "net.yml").write_text(spec.to_yaml())
    (tmp_path / "net.json").write_text(json.dumps(spec.to_dict()))
    assert load_spec(tmp_path / "net.yml") == spec
    assert load_spec(str(tmp_path / "net.json")) == spec
    assert load_spec(json.dumps(spec.to_dict())) == spec  # JSON text starts with "{"
    assert load_spec(spec) == spec
    assert load_spec("fmnist-tf").name == "fmnist-tf"
    nameless = {"input": [1, 8, 8], "layers": ["gap"]}
    (tmp_path / "tiny.yaml").write_text(json.dumps(nameless))
    assert load_spec(tmp_path / "tiny.yaml").name == "tiny"  # the file's stem


def test_preset_names():
    assert {
        "lenet5",
        "fmnist-tf",
        "vgg-small",
        "resnet-small",
        "allconv-gap",
        "mlp",
        "fast",
    } <= set(preset_names())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_random_valid_specs_load_with_the_formulas_shapes(case: Case):
    """The validator accepts every valid spec and its shapes equal the strategy's own formula."""
    assert shapes(load_spec(case.spec)) == case.shapes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_round_trip(case: Case):
    """load → dump → load is the same Spec, through YAML text, a dict and JSON."""
    spec = load_spec(case.spec)
    assert load_spec(spec.to_yaml()) == spec
    assert load_spec(spec.to_dict()) == spec
    assert load_spec(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.to_dict() == load_spec(spec.to_yaml()).to_dict()


def test_to_yaml_reads_like_the_design():
    text = load_spec(DESIGN_EXAMPLE).to_yaml()
    assert "- conv: {filters: 32, kernel: 3, padding: same}\n" in text
    assert "- maxpool: 2\n" in text and "- linear: 10\n" in text and "input: [1, 28, 28]\n" in text


def test_spec_survives_deepcopy_and_pickle():
    import copy
    import pickle

    spec = load_spec(DESIGN_EXAMPLE)
    assert copy.deepcopy(spec) == spec
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_shapes_at_another_input_size():
    """A GAP network accepts any size (§5.2 B); `input` overrides the spec's."""
    assert shapes("fast", input=(1, 56, 56))[-2:] == [(128,), (10,)]
    assert shapes("fast", input=(1, 56, 56))[6] == (32, 28, 28)


def test_docstring_examples_hold():
    import doctest

    import cnnlab.design.spec

    assert doctest.testmod(cnnlab.design.spec).failed == 0
