"""cnnlab.build: the built model's real shapes and parameter counts against the analytic ones.

Truth: what torch produces when the model runs, and the textbook parameter formulas
(computed independently by the strategy in test_spec.py, and by cnnlab.geometry).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab import geometry
from cnnlab.design import layers
from cnnlab.design.build import Conv2dSame, Residual, build
from cnnlab.design.spec import KINDS, load_spec, shapes
from cnnlab.errors import SpecError
from test_spec import DESIGN_EXAMPLE, Case, valid_specs

# PyTorch notes that padding="same" with an even kernel pads a copy of the input: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


def _real_shapes(model: nn.Sequential, input_shape) -> list[tuple[int, ...]]:
    """Run the model one child at a time ("0", "1", ...) and record each output's shape."""
    x = torch.randn(2, *input_shape)
    out = []
    with torch.no_grad():
        for i, (name, child) in enumerate(model.named_children()):
            assert name == str(i)
            x = child(x)
            out.append(tuple(x.shape[1:]))
    return out


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_random_specs_analytic_shapes_and_params_equal_torch(case: Case):
    model = build(case.spec).eval()
    spec = model.spec
    assert len(model) == len(spec.layers)
    assert _real_shapes(model, spec.input) == shapes(spec) == case.shapes
    assert _n_params(model) == case.params


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs(max_layers=4))
def test_round_trip_builds_the_same_model(case: Case):
    spec = load_spec(case.spec)
    torch.manual_seed(0)
    a = build(spec).eval()
    torch.manual_seed(0)
    b = build(spec.to_yaml()).eval()
    assert repr(a) == repr(b)
    x = torch.randn(2, *spec.input)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


_values = st.integers(-2, 6) | st.sampled_from(["same", "valid", None, True, 1.5, [1, 2], [0, 3]])
_keys = st.sampled_from(
    ["filters", "kernel", "stride", "padding", "dilation", "groups", "features", "output_size"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs(max_layers=5), st.data())
def test_perturbed_specs_fail_cleanly_or_build_right(case: Case, data):
    """One argument of one layer set to a random value: either SpecError, or a model whose
    real shapes are the analytic ones (no torch error slips through validation)."""
    spec = load_spec(case.spec)
    tunable = [i for i, layer in enumerate(spec.layers) if set(layer.args) - {"layers"}]
    i = data.draw(st.sampled_from(tunable or range(len(spec.layers))))
    obj = spec.layers[i].to_obj()
    kind, args = (obj, {}) if isinstance(obj, str) else next(iter(obj.items()))
    if not isinstance(args, dict):
        args = {KINDS[kind].short: args}
    own = [key for key in KINDS[kind].args if key != "layers"]
    key = data.draw(st.sampled_from(own) if own and data.draw(st.booleans()) else _keys)
    layers = [layer.to_obj() for layer in spec.layers]
    layers[i] = {kind: {**args, key: data.draw(_values)}}
    try:
        model = build({**case.spec, "layers": layers}).eval()
    except SpecError:
        return
    assert _real_shapes(model, model.spec.input) == shapes(model.spec)


def test_children_are_named_by_layer_index_including_residual_bodies():
    model = build(
        {
            "input": [3, 16, 16],
            "layers": [
                {"conv": {"filters": 8, "padding": "same"}},
                "relu",
                {"residual": [{"conv": {"filters": 16, "stride": 2, "padding": 1}}, "batchnorm"]},
                "gap",
                {"linear": 4},
            ],
        }
    )
    names = dict(model.named_modules())
    assert isinstance(names["0"], nn.Conv2d) and isinstance(names["2.0"], nn.Conv2d)
    assert isinstance(names["2.1"], nn.BatchNorm2d) and isinstance(names["2"], Residual)
    assert isinstance(names["3"], layers.GlobalAvgPool2d) and names["4"].in_features == 16
    # the body halves the size and doubles the channels: 1×1 stride-2 conv + BN shortcut
    proj, norm = names["2.shortcut"]
    assert proj.kernel_size == (1, 1) and proj.stride == (2, 2) and proj.bias is None
    assert isinstance(norm, nn.BatchNorm2d)
    assert "(shortcut): Sequential" in repr(names["2"])


def test_residual_identity_shortcut_adds_the_input():
    """y = body(x) + x: with the body's conv zeroed, the block is the identity."""
    model = build(
        {"input": [2, 6, 6], "layers": [{"residual": [{"conv": {"filters": 2, "padding": 1}}]}]}
    )
    block = model[0]
    assert block.shortcut is None and "shortcut=identity" in repr(block)
    nn.init.zeros_(block[0].weight)
    nn.init.zeros_(block[0].bias)
    x = torch.randn(3, 2, 6, 6)
    assert torch.equal(model(x), x)


def test_residual_projection_without_batchnorm_is_a_biased_conv():
    body = [{"conv": {"filters": 4, "stride": 2, "padding": 1}}, "relu"]
    model = build({"input": [2, 8, 8], "layers": [{"residual": body}]})
    proj = model[0].shortcut
    assert isinstance(proj, nn.Conv2d) and proj.bias is not None and proj.stride == (2, 2)
    assert model(torch.randn(1, 2, 8, 8)).shape == (1, 4, 4, 4)


def test_residual_without_a_fitting_projection_is_an_error():
    # the body shrinks 8 -> 6 and ⌊(8 − 1)/s⌋ + 1 = 6 has no integer solution s
    with pytest.raises(SpecError, match=r"layer 1 \(residual\): the body maps 2×8×8 to 4×6×6"):
        build({"input": [2, 8, 8], "layers": ["relu", {"residual": [{"conv": 4}]}]})


def test_flat_residual_projects_with_a_linear_layer():
    body = [{"linear": 6}, "batchnorm", "relu"]
    model = build({"input": [1, 4, 4], "layers": ["flatten", {"residual": body}]})
    proj, norm = model[1].shortcut
    assert (proj.in_features, proj.out_features) == (16, 6) and isinstance(norm, nn.BatchNorm1d)


def test_even_kernel_same_padding_matches_pytorch_same():
    """padding 'same' with a 4×4 kernel pads 1 before and 2 after, as nn.Conv2d(padding='same')."""
    model = build(
        {"input": [1, 9, 9], "layers": [{"conv": {"filters": 2, "kernel": 4, "padding": "same"}}]}
    )
    conv = model[0]
    assert conv.padding == "same"
    torch.manual_seed(0)
    ref = nn.Conv2d(1, 2, 4, padding="same")
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 1, 9, 9)
    assert torch.equal(conv(x), ref(x))


@pytest.mark.parametrize(("kernel", "dilation"), [(4, 1), (2, 1), (2, 3), (6, 2)])
@pytest.mark.parametrize("stride", [2, 3])
def test_even_kernel_same_padding_with_stride(kernel, stride, dilation):
    """At stride S, 'same' pads like PyTorch's stride-1 'same' (t//2 before, rest after): O = ⌈I/S⌉.

    Truth: F.pad with geometry.same_padding, then an unpadded torch conv.
    """
    size = 11
    spec = {
        "input": [2, size, size],
        "layers": [
            {"conv": {"filters": 3, "kernel": kernel, "stride": stride, "dilation": dilation,
                      "padding": "same"}}
        ],
    }  # fmt: skip
    conv = build(spec)[0]
    before, after = geometry.same_padding(kernel, dilation)
    assert isinstance(conv, Conv2dSame) == (before != after)  # symmetric: a plain nn.Conv2d
    x = torch.randn(2, 2, size, size)
    ref = nn.functional.conv2d(
        nn.functional.pad(x, (before, after, before, after)), conv.weight, conv.bias, stride,
        dilation=dilation,
    )  # fmt: skip
    torch.testing.assert_close(conv(x), ref)
    assert ref.shape[-1] == -(-size // stride) == shapes(spec)[0][-1]


def test_odd_kernel_same_padding_is_symmetric_integer_padding():
    conv = build(
        {
            "input": [1, 8, 8],
            "layers": [{"conv": {"filters": 2, "kernel": [3, 5], "padding": "same", "stride": 2}}],
        }
    )[0]
    assert type(conv) is nn.Conv2d and conv.padding == (1, 2)


def test_layers_use_cnnlab_layers_and_batchnorm_follows_the_rank():
    model = build(
        {
            "input": [2, 8, 8],
            "layers": [
                "batchnorm", {"concatpool": 2}, {"adaptiveconcatpool": 2}, "flatten",
                "batchnorm", {"leaky_relu": 0.2}, {"elu": 0.5}, {"gelu": "tanh"}, {"linear": 3},
            ],
        }
    )  # fmt: skip
    assert isinstance(model[0], nn.BatchNorm2d) and isinstance(model[4], nn.BatchNorm1d)
    assert isinstance(model[1], layers.ConcatPool2d) and isinstance(
        model[2], layers.AdaptiveConcatPool2d
    )
    assert model[5].negative_slope == 0.2 and model[6].alpha == 0.5
    assert model[7].approximate == "tanh" and model[8].in_features == 8 * 2 * 2


def test_build_attaches_the_spec_and_accepts_every_source():
    spec = load_spec("mlp")
    for source in ("mlp", spec, spec.to_dict(), spec.to_yaml()):
        assert build(source).spec == spec


def test_build_raises_spec_error():
    with pytest.raises(SpecError, match=r"layer 1 \(linear\)"):
        build({"input": [1, 8, 8], "layers": ["relu", {"linear": 3}]})


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_builds_and_runs(kind):
    """Each kind of the language, alone (with its required argument) on 2×6×6 maps."""
    first = {"conv": {"conv": 4}, "linear": {"linear": 3}, "residual": {"residual": ["relu"]}}
    layers_ = [first.get(kind, kind)]
    model = build(
        {"input": [2, 6, 6], "layers": layers_ if kind != "linear" else ["flatten", *layers_]}
    )
    out = model.eval()(torch.randn(2, 2, 6, 6))
    assert tuple(out.shape[1:]) == shapes(model.spec)[-1]


def test_design_example_builds_with_the_formulas_parameter_count():
    """DESIGN.md's example: params by the notes' formula (§1), shapes by running it."""
    model = build(DESIGN_EXAMPLE).eval()
    assert _real_shapes(model, (1, 28, 28)) == shapes(model.spec)
    convs = (3 * 3 * 1 + 1) * 32 + (3 * 3 * 32 + 1) * 64 + (3 * 3 * 128 + 1) * 128
    norms = 2 * 32 + 2 * 128
    assert _n_params(model) == convs + norms + (128 + 1) * 10


def test_a_spec_too_large_for_memory_is_a_spec_error_naming_its_size():
    """torch's 'can't allocate memory' RuntimeError was a traceback at `cnnlab train`; run in
    a child process whose address space is capped at 4 GiB, so the 8 GiB ask fails at once."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))
        from cnnlab.design.build import build
        from cnnlab.errors import SpecError
        spec = {"input": [1, 8, 8], "layers": ["flatten", {"linear": 2**25}, {"linear": 10}]}
        try:
            build(spec)
        except SpecError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "does not fit in memory: its 2,516,582,410 parameters take 9.4 GiB" in done.stdout, (
        done.stdout + done.stderr[-500:]
    )
