"""cnnlab.design.spec on bad input: one SpecError naming the layer, its kind and the rule;
limits on a spec's size, depth and YAML alias expansion; messages that quote briefly."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.design import kinds as kinds_module
from cnnlab.design import spec as spec_module
from cnnlab.design.build import build
from cnnlab.design.spec import (
    MAX_DEPTH,
    MAX_LAYERS,
    MAX_TEXT,
    MAX_VALUES,
    Spec,
    load_spec,
    shapes,
)
from cnnlab.errors import SpecError
from test_spec import Case, valid_specs

# --- bad input: SpecError naming the layer, its kind and the rule ------------------------------

BASE = {"name": "t", "input": [1, 5, 5]}
BAD = [
    ([{"conv": {"filters": 4, "kernel": 7}}],
     "layer 0 (conv): kernel 7 exceeds its padded input 5×5"),
    (["relu", {"conv": {"filters": 4, "dilation": 3}}], "layer 1 (conv): kernel 3 (dilation 3"),
    ([{"conv": {"filters": 4, "kernel": 3, "padding": 1}}, {"maxpool": 8}],
     "layer 1 (maxpool): kernel 8 exceeds its padded input 5×5"),
    ([{"convv": 3}], "unknown kind (did you mean conv?); valid kinds: conv, maxpool"),
    ([{"conv": {"filter": 3}}], "layer 0 (conv): unknown argument 'filter'"),
    ([{"conv": {"filters": 0}}], "layer 0 (conv): filters must be an integer >= 1, got 0"),
    ([{"conv": {"filters": -3}}], "layer 0 (conv): filters must be an integer >= 1"),
    ([{"conv": {"filters": 3, "stride": 0}}], "layer 0 (conv): stride must be an integer >= 1"),
    ([{"maxpool": {"kernel": 2, "stride": 0}}], "layer 0 (maxpool): stride must be"),
    ([{"conv": {"filters": 3, "kernel": [3, 0]}}], "layer 0 (conv): kernel must be"),
    ([{"conv": {"filters": 3, "padding": -1}}], "layer 0 (conv): padding must be"),
    ([{"conv": {"filters": 3, "padding": "full"}}], "layer 0 (conv): padding must be"),
    ([{"conv": {"filters": 3, "bias": "yes"}}], "layer 0 (conv): bias must be true or false"),
    ([{"conv": {"filters": 2, "groups": 3}}], "layer 0 (conv): input channels 1 is not divisible"),
    ([{"linear": 10}], "layer 0 (linear): its input is feature maps 1×5×5, not flat features; "
     "add `flatten` or `gap` before it"),
    (["flatten", {"conv": 3}], "layer 1 (conv): needs feature maps"),
    (["gap", "gap"], "layer 1 (gap): needs feature maps"),
    (["linear"], "layer 0 (linear): needs `features`"),
    ([{"maxpool": {"kernel": 2, "padding": 2}}], "layer 0 (maxpool): padding 2 is more than half"),
    ([{"residual": ["relu", {"conv": {"filters": 4, "kernel": 9}}]}],
     "layer 0.1 (conv): kernel 9 exceeds"),
    ([{"residual": ["flatten"]}], "layer 0 (residual): the body turns 1×5×5 into 25 features"),
    ([{"residual": [{"conv": {"filters": 2, "padding": 3}}]}],
     "layer 0 (residual): the body maps 1×5×5 to 2×9×9"),
    ([{"residual": []}], "layer 0 (residual): layers must be a non-empty list"),
    ([{"dropout": 1.5}], "layer 0 (dropout): p must be in [0, 1)"),
    ([{"leaky_relu": float("nan")}], "layer 0 (leaky_relu): slope must be a finite number"),
    ([{"relu": 0.1}], "layer 0 (relu): takes no arguments"),
    ([{"relu": 1, "tanh": 2}], "layer 0: expected a name like `relu` or a one-key mapping"),
    ([{"adaptiveconcatpool": 0}], "layer 0 (adaptiveconcatpool): output_size must be"),
    ([42], "layer 0: expected a name"),
    ([{"conv": 10**5000}], "layer 0 (conv): filters must be at most 2,147,483,647"),
    ([{"elu": 10**400}], "layer 0 (elu): alpha must be a finite number"),
    ([], "layers is empty"),
]  # fmt: skip


@pytest.mark.parametrize(("layers", "message"), BAD)
def test_bad_layers_name_the_layer_and_rule(layers, message):
    with pytest.raises(SpecError) as err:
        load_spec({**BASE, "layers": layers})
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "t", "layers": ["relu"]}, "the spec has no input; add e.g. `input: [1, 28, 28]`"),
        ({"input": [1, 28], "layers": ["relu"]}, "input must be [C, H, W]"),
        ({"input": [1, 28, 0], "layers": ["relu"]}, "input must be [C, H, W]"),
        ({"input": "1,28,28", "layers": ["relu"]}, "input must be [C, H, W]"),
        ({"input": [1, 8, 8], "layers": "relu"}, "layers must be a list"),
        ({"input": [1, 8, 8]}, "layers must be a list"),
        ({"input": [1, 8, 8], "layers": ["relu"], "extra": 1}, "unknown spec key 'extra'"),
        ({"name": 3, "input": [1, 8, 8], "layers": ["relu"]}, "spec name must be a string"),
    ],
)
def test_bad_top_level(spec, message):
    with pytest.raises(SpecError, match=None) as err:
        load_spec(spec)
    assert message in str(err.value)


def test_malformed_yaml_and_json_name_file_and_line(tmp_path: Path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: x\ninput: [1, 28, 28\nlayers:\n  - relu\n")
    with pytest.raises(SpecError, match=r"bad\.yaml, line 3, column \d+: invalid YAML"):
        load_spec(bad_yaml)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"name": "x",\n "input": [1, 28, 28],,\n}')
    with pytest.raises(SpecError, match=r"bad\.json, line 2, column \d+: invalid JSON"):
        load_spec(bad_json)
    with pytest.raises(SpecError, match=r"spec text, line 3"):
        load_spec("name: x\ninput: [1, 2\nlayers: []\n")


def test_a_repeated_key_is_an_error_not_the_last_one_winning(tmp_path: Path):
    """Plain yaml.safe_load and json.loads keep the last of two equal keys silently."""
    with pytest.raises(SpecError, match=r"line 3, column 1: .*'input' appears twice"):
        load_spec("name: x\ninput: [1, 8, 8]\ninput: [3, 9, 9]\nlayers: [relu]\n")
    with pytest.raises(SpecError, match=r"line 2, .*'filters' appears twice"):
        load_spec("input: [1, 8, 8]\nlayers: [{conv: {filters: 8, filters: 16, kernel: 3}}]\n")
    merged = "input: [1, 8, 8]\nlayers:\n  - conv: &c {filters: 8, kernel: 3}\n" \
        "  - conv: {<<: *c, filters: 16}\n  - gap\n"  # fmt: skip
    assert load_spec(merged).layers[1].args["filters"] == 16  # a merge key is no repeat
    dup = tmp_path / "dup.json"
    dup.write_text('{"input": [1, 8, 8], "layers": [{"conv": {"filters": 8, "filters": 3}}]}')
    with pytest.raises(SpecError, match=r"dup\.json: invalid JSON: the key 'filters' appears"):
        load_spec(dup)


def test_file_errors_name_the_file(tmp_path: Path):
    with pytest.raises(SpecError, match="spec file .*missing.yaml not found"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match="neither a preset .*fmnist-tf.* nor a spec file"):
        load_spec("fmnist-tff")
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec(tmp_path)
    with pytest.raises(SpecError, match="the spec source is empty"):
        load_spec(" ")
    bad = tmp_path / "net.yaml"
    bad.write_text("input: [1, 5, 5]\nlayers:\n  - conv: {filters: 2, kernel: 7}\n")
    with pytest.raises(SpecError, match=r"net\.yaml, line 3: layer 0 \(conv\): kernel 7"):
        load_spec(bad)
    nested = tmp_path / "nested.yaml"
    nested.write_text("input: [1, 8, 8]\nlayers:\n  - residual:\n    - relu\n    - linear: 2\n")
    with pytest.raises(SpecError, match=r"nested\.yaml, line 5: layer 0\.1 \(linear\)"):
        load_spec(nested)


def test_self_referencing_yaml_is_a_spec_error():
    with pytest.raises(SpecError, match="nests too deeply"):
        load_spec("name: x\ninput: [1, 8, 8]\nlayers: &a [{residual: *a}]\n")


# --- property: invalid specs raise SpecError naming the broken layer, nothing else -------------


def _mutations(draw, case: Case) -> tuple[dict, int, str]:
    """Break layer i of a valid spec in one way; returns (spec, i, kind the error must name)."""
    layers = list(case.spec["layers"])
    i = draw(st.integers(0, len(layers) - 1))
    before = case.spec["input"] if i == 0 else case.shapes[i - 1]
    size = max(before[1:]) if len(before) == 3 else 1
    options = [
        ({"bogus": 1}, "'bogus'"),
        ({"dropout": draw(st.sampled_from([-0.1, 1.0, 2, "x"]))}, "dropout"),
        ({"linear": {"features": 3, "units": 2}}, "linear"),
        ({"linear": draw(st.sampled_from([0, -2, 2.5, "ten", True]))}, "linear"),
    ]
    if len(before) == 3:
        options += [
            ({"conv": {"filters": 2, "kernel": size + draw(st.integers(1, 3))}}, "conv"),
            ({"conv": {"filters": 2, "stride": 0}}, "conv"),
            ({"maxpool": {"kernel": size + 1}}, "maxpool"),
            ({"linear": 4}, "linear"),  # on maps, with no flatten/gap before it
        ]
    else:
        options += [({"conv": 4}, "conv"), ("gap", "gap")]
    layer, kind = draw(st.sampled_from(options))
    layers[i] = layer
    return {**case.spec, "layers": layers}, i, kind


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_specs_name_the_broken_layer(data):
    case = data.draw(valid_specs())
    spec, i, kind = _mutations(data.draw, case)
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert str(err.value).startswith(f"layer {i} ({kind})"), str(err.value)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 40)
    | st.integers()
    | st.floats()
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
kinds = st.sampled_from(
    ["conv", "maxpool", "avgpool", "concatpool", "adaptiveconcatpool", "gap", "flatten", "linear",
     "dropout", "batchnorm", "residual", "relu", "leaky_relu", "elu", "gelu", "tanh", "bogus"]
)  # fmt: skip
arg_names = st.sampled_from(
    ["filters", "kernel", "stride", "padding", "dilation", "groups", "bias", "features", "p",
     "layers", "slope", "output_size", "approximate", "x"]
)  # fmt: skip
garbage_layers = st.recursive(
    kinds | st.dictionaries(kinds, json_values, min_size=1, max_size=1),
    lambda inner: (
        st.dictionaries(kinds, st.lists(inner, max_size=3), min_size=1, max_size=1)
        | st.dictionaries(
            kinds, st.dictionaries(arg_names, json_values | inner, max_size=3), max_size=1
        )
    ),
    max_leaves=8,
)
garbage = (
    json_values
    | st.text(max_size=60)
    | st.fixed_dictionaries(
        {"input": json_values | st.lists(st.integers(-1, 9), max_size=4), "layers": json_values}
    )
    | st.fixed_dictionaries(
        {"input": st.just([2, 9, 9]), "layers": st.lists(garbage_layers, min_size=1, max_size=5)}
    )
)


@settings(max_examples=300, deadline=None)
@given(garbage)
def test_garbage_raises_spec_error_only(source):
    """Whatever goes in, the only exception out is SpecError."""
    try:
        spec = load_spec(source)
    except SpecError:
        return
    assert isinstance(spec, Spec)
    assert load_spec(spec.to_yaml()) == spec  # and what loads, round-trips


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="{}[]:,-#&*!|>'\"\n abcinput123", max_size=80))
def test_yaml_like_garbage_raises_spec_error_only(text):
    try:
        load_spec("\n" + text)
    except SpecError:
        pass


# --- limits: a spec too large, too deep or too expanded is refused at once, by name -----------


def _fast(fn, *args) -> SpecError:
    """fn(*args) raises a SpecError within 10 s, returned. Idle, each case takes under 1 s;
    before the limits, the 1.5 M-layer spec took 81 s (the bound leaves a shared machine room)."""
    start = time.perf_counter()
    with pytest.raises(SpecError) as err:
        fn(*args)
    assert time.perf_counter() - start < 10.0
    return err.value


def test_a_spec_of_a_million_layers_is_refused_at_once():
    """Issue: a 1.5 M-layer spec ran for minutes. The count is checked before any parsing."""
    huge = {"input": [1, 8, 8], "layers": ["relu"] * 1_500_000}
    assert "MAX_LAYERS" in str(_fast(load_spec, huge))
    # in a residual body too, and as text below the text limit
    body = {"input": [1, 8, 8], "layers": [{"residual": ["relu"] * (MAX_LAYERS + 1)}]}
    assert f"{MAX_LAYERS:,} layers" in str(_fast(load_spec, body))
    text = "input: [1, 8, 8]\nlayers:\n" + "- relu\n" * (MAX_LAYERS + 1)
    assert len(text) < MAX_TEXT and "MAX_LAYERS" in str(_fast(load_spec, text))


def test_the_limits_leave_room_for_real_networks():
    """MAX_LAYERS layers exactly (bodies included) still load."""
    spec = {"input": [1, 4, 4], "layers": [{"residual": ["relu"] * 99}] * (MAX_LAYERS // 100)}
    assert len(load_spec(spec).layers) == MAX_LAYERS // 100


def test_text_over_the_limit_is_refused_before_parsing(tmp_path: Path):
    text = "input: [1, 8, 8]\nlayers: [relu]\n#" + "x" * MAX_TEXT
    assert "MAX_TEXT" in str(_fast(load_spec, text))
    big = tmp_path / "big.yaml"
    big.write_text("input: [1, 8, 8]\nlayers: [relu]\n#" + "x" * (4 * MAX_TEXT))
    assert "big.yaml" in str(_fast(load_spec, big))


def _nest(depth: int) -> dict:
    layer = "relu"
    for _ in range(depth):
        layer = {"residual": [layer]}
    return {"input": [1, 4, 4], "layers": [layer]}


def test_nesting_is_limited_by_name():
    assert len(load_spec(_nest(MAX_DEPTH)).layers) == 1
    assert "MAX_DEPTH" in str(_fast(load_spec, _nest(MAX_DEPTH + 1)))


LAUGHS = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
)


@pytest.mark.parametrize("where", ["name", "input", "layers", "conv"])
def test_billion_laughs_is_refused_briefly(where):
    """Issue: a billion-laughs value gave a 143 KB one-line error. 9^9 values: refused."""
    value = {"conv": "[{conv: *a8}]"}.get(where, "*a8")
    fields = {"name": "x", "input": "[1, 8, 8]", "layers": "[relu]"}
    fields[where if where != "conv" else "layers"] = value
    text = "bombs:\n" + LAUGHS.replace("\n", "\n  ").replace("a0:", "  a0:", 1) + "\n"
    text += "".join(f"{k}: {v}\n" for k, v in fields.items())
    message = str(_fast(load_spec, text))
    assert "MAX_VALUES" in message and len(message) < 300


def test_a_value_below_the_alias_limit_is_quoted_briefly():
    """9^5 values, allowed by MAX_VALUES, but wrong: the message quotes a few of them."""
    text = LAUGHS.split("\na5")[0].replace("\n", "\n  ")
    assert 9**5 < MAX_VALUES
    for layers in ("[{conv: *a4}]", "[{conv: {filters: *a4}}]", "[*a4]", "*a4"):
        source = f"bombs:\n  {text}\ninput: [1, 8, 8]\nlayers: {layers}\n"
        with pytest.raises(SpecError) as err:
            load_spec(source.replace("bombs:", "description: ''\nbombs:"))
        assert len(str(err.value)) < 300


def test_huge_values_are_quoted_briefly():
    """A 5,000-digit integer (str() of it raises) or a megabyte name: short messages."""
    for bad in (10**5000, -(10**5000), "x" * 10**6, [[list(range(50))] * 50] * 50):
        for layers in ([{"conv": bad}], [{"dropout": bad}], [bad], [{"linear": {"features": bad}}]):
            with pytest.raises(SpecError) as err:
                load_spec({"input": [1, 8, 8], "layers": layers})
            assert len(str(err.value)) < 300, layers
        with pytest.raises(SpecError) as err:
            load_spec({"input": [1, 8, bad], "layers": ["relu"]})
        assert len(str(err.value)) < 300


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_not_read(tmp_path: Path):
    """Reading a FIFO blocks until a writer comes: it must be refused before reading."""
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in str(_fast(load_spec, fifo))


# --- validated once: the spec carries its shapes, build does not validate again --------------


def test_a_loaded_spec_carries_its_shapes_and_is_not_validated_again(monkeypatch):
    spec = load_spec("fast")
    assert list(spec.shapes) == shapes(spec) == kinds_walk(spec)
    assert load_spec(spec) is spec

    def fail(*args, **kwargs):
        raise AssertionError("validated again")

    monkeypatch.setattr(spec_module, "_from_mapping", fail)
    monkeypatch.setattr(kinds_module, "infer", fail)
    monkeypatch.setattr(spec_module, "infer", fail)
    model = build(spec)
    assert model.spec is spec


def kinds_walk(spec) -> list:
    """The shapes by the kind records' shape rules, walked here by hand (no infer)."""
    shape, out = spec.input, []
    for layer in spec.layers:
        shape = kinds_module.KINDS[layer.kind].shape(layer.args, shape, "here")
        out.append(shape)
    return out


def test_a_replaced_spec_is_validated_again():
    """dataclasses.replace makes an unchecked copy: a new input gets new shapes, or an error."""
    spec = load_spec("fast")
    moved = dataclasses.replace(spec, input=(1, 56, 56))
    with pytest.raises(SpecError, match="not validated"):
        moved.shapes  # noqa: B018 - the property raises
    assert load_spec(moved).shapes == tuple(shapes(spec, input=(1, 56, 56)))
    with pytest.raises(SpecError, match="below 1×1|exceeds"):
        load_spec(dataclasses.replace(spec, input=(1, 2, 2)))


def test_a_kind_without_a_shape_rule_or_builder_cannot_exist():
    relu = kinds_module.KINDS["relu"]
    for missing in ("shape", "make"):
        with pytest.raises(TypeError, match="shape rule and a builder"):
            dataclasses.replace(relu, **{missing: None})
    assert all(callable(k.shape) and callable(k.make) for k in kinds_module.KINDS.values())


def test_quote_is_short_whatever_the_value():
    """quote(): at most its width, a huge int by its size, a failing __repr__ by its type."""
    import doctest

    from cnnlab.design import quote as quote_module
    from cnnlab.design.quote import quote

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert doctest.testmod(quote_module).failed == 0
    assert quote(Broken()).startswith("<Broken")
    assert quote(10**5000) == "<16610-bit integer>"
    for value in ("x" * 10**6, list(range(10**5)), {i: [i] * 100 for i in range(100)}):
        assert len(quote(value)) <= 60
        assert len(quote(value, width=20)) <= 20
