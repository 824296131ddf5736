"""cnnlab.summary of specs (cnnlab's own models, built on meta: no real tensor) and the
`cnnlab summary` command, against independent truths: the built model's real forward
(shapes), torchinfo (MACs), the spec generator's own parameter count, §1's formulas and the
notes' numbers (fmnist-tf). Summaries of models cnnlab did not build: test_summary.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torchinfo
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cnnlab
from cnnlab.design.summary import summary
from cnnlab.errors import SpecError
from test_spec import valid_specs
from test_summary import leaf_rows, real_leaf_shapes

# --- random specs: summary (meta, no real data) against the built model's real forward -----


@st.composite
def specs(draw) -> dict:
    """Small valid specs: conv/pool/activation/batchnorm/residual blocks, a GAP or flatten head."""
    channels = draw(st.sampled_from([1, 3]))
    h, w = draw(st.integers(16, 28)), draw(st.integers(16, 28))
    layers, downsamples = [], 0
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "act", "batchnorm", "residual"]))
        if kind == "conv":
            stride = draw(st.integers(1, 2)) if downsamples < 2 else 1
            downsamples += stride == 2
            pad = "same" if stride == 1 and draw(st.booleans()) else draw(st.integers(0, 1))
            conv = {"filters": draw(st.integers(1, 8)), "kernel": draw(st.integers(1, 3))}
            layers.append({"conv": {**conv, "stride": stride, "padding": pad}})
        elif kind == "pool" and downsamples < 2:
            downsamples += 1
            pool = draw(st.sampled_from(["maxpool", "avgpool", "concatpool"]))
            layers.append({pool: draw(st.integers(2, 3))})
        elif kind == "act":
            layers.append(draw(st.sampled_from(["relu", "tanh", "gelu", {"leaky_relu": 0.1}])))
        elif kind == "batchnorm":
            layers.append("batchnorm")
        elif kind == "residual":
            body = [{"conv": {"filters": draw(st.integers(1, 8)), "padding": "same"}}, "relu"]
            layers.append({"residual": body})
    layers.append(draw(st.sampled_from(["gap", "flatten"])))
    if draw(st.booleans()):
        layers += ["dropout", {"linear": draw(st.integers(1, 10))}]
    return {"name": "random", "input": [channels, h, w], "layers": layers}


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_random_specs_match_the_built_models_real_forward(spec):
    try:
        spec = cnnlab.load_spec(spec)
    except SpecError:  # unpadded convs after two poolings can shrink a map below 1×1
        assume(False)
    s = summary(spec)  # traced on meta: no real tensor
    model = cnnlab.build(spec)
    assert s.input_size == tuple(spec.input)
    assert leaf_rows(s, model) == real_leaf_shapes(model, s.input_size)
    modules = dict(model.named_modules())
    for r in s.rows:
        assert r.params == sum(p.numel() for p in modules[r.name].parameters(recurse=False))
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.total_macs == torchinfo.summary(model, (1, *s.input_size), verbose=0).total_mult_adds


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_the_spec_suites_random_specs_match_torch_and_their_own_arithmetic(case):
    """test_spec's generator (kernels up to its map, dilation, groups, (h, w) pairs, 'same' at
    any stride, adaptive concat pooling, flat residuals): summary's shapes equal the real
    forward's, its parameters the generator's own count, its MACs torchinfo's."""
    s = summary(case.spec)
    model = cnnlab.build(case.spec)
    assert leaf_rows(s, model) == real_leaf_shapes(model, s.input_size)
    assert s.total_params == case.params
    assert s.total_macs == torchinfo.summary(model, (1, *s.input_size), verbose=0).total_mult_adds


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_an_even_same_kernel_wider_than_a_1x1_map_keeps_its_size():
    """Found by the test above: 'same' pads (0, 1) for a width-2 kernel, so a 1×1 map stays
    1×1 (torch agrees); the before-pad alone is not the window's padding."""
    wide = {"conv": {"filters": 1, "kernel": [1, 2], "padding": "same"}}
    spec = {"input": [1, 3, 3], "layers": [{"conv": {"filters": 1}}, wide, "gap", {"linear": 1}]}
    s = summary(spec)
    model = cnnlab.build(spec)
    assert leaf_rows(s, model) == real_leaf_shapes(model, (1, 3, 3))
    assert "even-kernel-same" in {w.code for w in s.warnings}


def test_cli_bad_spec_is_one_line_and_exit_2_in_a_real_process(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [1, 5, 5]\nlayers:\n  - conv: {filters: 2, kernel: 7}\n")
    cli = str(Path(sys.executable).with_name("cnnlab"))
    out = subprocess.run([cli, "summary", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "layer 0 (conv): kernel 7" in out.stderr


def test_notes_numbers_fmnist_tf_and_the_mlp_comparison(capsys):
    from cnnlab.cli import main

    assert summary("fmnist-tf", (1, 28, 28)).total_params == 3_274_634
    assert main(["summary", "fmnist-tf", "--input", "1,28,28", "--compare-mlp", "1000"]) == 0
    out = capsys.readouterr().out
    assert "3,274,634" in out and "785,000" in out  # 28·28 inputs (+1 bias) × 1,000 units
    assert (
        main(["summary", "fmnist-tf", "--input", "3,224,224", "--json", "--compare-mlp", "1000"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["compare_mlp"]["params"] == 150_529_000  # §1


@pytest.mark.parametrize("bad", ["1,28", "1,28,x", "0,28,28", "-1,28,28", ""])
def test_cli_malformed_input_is_one_line_exit_2(bad, capsys):
    from cnnlab.cli import main

    try:  # an empty value is a usage error, which argparse ends with SystemExit
        code = main(["summary", "fmnist-tf", f"--input={bad}"])
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--input" in err


def test_spec_output_below_one_pixel_is_a_spec_error():
    with pytest.raises(SpecError, match="layer"):
        summary("lenet5", (1, 4, 4))


def test_a_spec_is_summarised_without_real_tensors():
    """fmnist-tf at 3×1024×1024 has a 4.3-billion-parameter dense layer (17 GB at float32):
    only a meta build can summarise it, and its count follows §1's formulas."""
    from cnnlab.geometry import conv_params, linear_params

    s = summary("fmnist-tf", (3, 1024, 1024))
    expected = (
        conv_params(5, 3, 32)
        + conv_params(5, 32, 64)
        + linear_params(64 * 256 * 256, 1024)
        + linear_params(1024, 10)
    )
    assert s.total_params == expected > 4_000_000_000
    assert s.rows[-1].output_shape == (10,)
