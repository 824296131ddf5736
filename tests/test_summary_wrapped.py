"""Models as people wrap them (nn.DataParallel, DDP, ...) are summarized as the module the
wrapper holds, rows named as explain and diagnose name the layers (`inspect.preserve.
unwrap` / `inner_name`: `features.0`, not `module.features.0`)."""

from __future__ import annotations

import pytest
import torch
import torchinfo
from torch import nn

from cnnlab.design.summary import summary
from cnnlab.errors import CnnlabError
from cnnlab.inspect.preserve import inner_name


def _net() -> nn.Module:
    model = nn.Sequential()
    model.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    model.pool = nn.AdaptiveAvgPool2d(1)
    model.flat = nn.Flatten()
    model.head = nn.Linear(4, 5)
    return model


def _check_as_inner(wrapped: nn.Module, inner: nn.Module) -> None:
    """Rows named as `inner_name` names the wrapper's layers (torch's named_modules of the
    wrapper, its prefix dropped), shapes as torch's forward gives them, totals torchinfo's."""
    got = summary(wrapped, input_size=(3, 16, 16))
    leaves = [n for n, m in wrapped.named_modules() if not m._modules]
    assert [r.name for r in got.rows] == [inner_name(wrapped, n) for n in leaves]
    x, shapes = torch.randn(1, 3, 16, 16), []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
        for m in inner.modules()
        if not m._modules
    ]
    inner.eval()(x)
    for handle in handles:
        handle.remove()
    assert [tuple(r.output_shape) for r in got.rows] == shapes
    theirs = torchinfo.summary(inner, (1, 3, 16, 16), verbose=0)
    assert got.total_params == theirs.total_params == sum(p.numel() for p in inner.parameters())
    assert got.total_macs == theirs.total_mult_adds


def test_data_parallel_is_summarized_as_its_module_named_as_inner_name():
    """nn.DataParallel on CPU named rows `module.features.0`, where torch.compile's wrapper
    gave `features.0`."""
    model = _net()
    _check_as_inner(nn.DataParallel(model), model)
    _check_as_inner(nn.DataParallel(torch.compile(model)), model)


def test_distributed_data_parallel_is_summarized_as_its_module(tmp_path):
    """DDP (gloo, one process) holds a Reducer that cannot be copied: the copy raised
    "TypeError: cannot pickle 'torch._C._distributed_c10d.Reducer' object"."""
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1
    )
    try:
        model = _net()
        _check_as_inner(nn.parallel.DistributedDataParallel(model), model)
    finally:
        dist.destroy_process_group()


def test_an_input_size_with_the_batch_dim_says_to_drop_it():
    """(1, 3, 16, 16), torch's input shape, was refused as not three integers, without
    saying which three."""
    with pytest.raises(CnnlabError) as err:
        summary(_net(), input_size=(1, 3, 16, 16))
    assert str(err.value) == (
        "input_size is (C, H, W) without the batch: give (3, 16, 16), not (1, 3, 16, 16)"
    )
    assert summary(_net(), input_size=(3, 16, 16)).rows  # the size it gives is accepted


def test_forward_hooks_of_the_users_are_named_in_a_lint_and_not_run():
    """A pre-hook that resizes the input to 32 px: torch's forward (and torchinfo, which runs
    it) computes the conv on 30×30, the summary's copy goes without hooks (14×14) and said
    nothing. Now a 'hooks' lint names the hooked modules; the rows are the unhooked model's,
    and the user's hooks are left in place, never called by the summary."""
    model, calls = _net(), []

    def resize(_module, args):
        calls.append(1)
        return (nn.functional.interpolate(args[0], size=(32, 32)),)

    plain = summary(model, input_size=(3, 16, 16))
    assert "hooks" not in [w.code for w in plain.warnings]
    model.register_forward_pre_hook(resize)
    model.features[0].register_forward_hook(lambda *_: calls.append(2))
    got = summary(model, input_size=(3, 16, 16))
    assert calls == [] and len(model._forward_pre_hooks) == 1
    assert got.rows == plain.rows
    theirs = torchinfo.summary(model, (1, 3, 16, 16), verbose=0)
    assert theirs.total_mult_adds != got.total_macs  # the hook changes what runs
    assert got.warnings[1:] == plain.warnings
    lint = got.warnings[0]
    assert (lint.code, lint.layer) == ("hooks", "(the model)")
    assert "'(the model)', 'features.0'" not in lint.message  # the model is not quoted
    assert "(the model), 'features.0' are not run" in lint.message


def _static_quantized() -> nn.Module:
    q = torch.ao.quantization
    model = nn.Sequential(q.QuantStub(), _net().eval(), q.DeQuantStub())
    model.qconfig = q.get_default_qconfig("fbgemm")
    prepared = q.prepare(model)
    prepared(torch.randn(4, 3, 16, 16))
    return q.convert(prepared)


def _dynamic_quantized() -> nn.Module:
    return torch.ao.quantization.quantize_dynamic(_net().eval(), {nn.Linear}, dtype=torch.qint8)


@pytest.mark.parametrize("build", [_static_quantized, _dynamic_quantized])
def test_quantized_layers_packed_weights_are_named_in_a_lint(build):
    """torch.ao's quantized conv and linear layers keep their weights packed: the summary
    counted them as 0 parameters and 0 MACs without a word (as torch's parameters() and
    torchinfo count them). Truth: the layers whose weight() is a quantized tensor."""
    model = build()
    got = summary(model, input_size=(3, 16, 16))
    assert got.total_params == sum(p.numel() for p in model.parameters())
    theirs = torchinfo.summary(model, (1, 3, 16, 16), verbose=0)
    assert got.total_params == theirs.total_params
    packed = [
        n for n, m in model.named_modules()
        if callable(getattr(m, "weight", None)) and m.weight().is_quantized
    ]  # fmt: skip
    assert packed
    (lint,) = [w for w in got.warnings if w.code == "quantized"]
    assert lint.layer == packed[0]
    assert lint.message.startswith(f"the quantized layers {', '.join(map(repr, packed))} keep")


def test_an_operator_of_torch_ops_is_named_as_the_code_calls_it():
    """The dynamically quantized Linear calls torch.ops.quantized.linear_dynamic, which the
    receptive field does not follow: the 'unfollowed' lint named it
    'pybind11_detail_function_record_v1_..._abi_1.linear_dynamic' (its __qualname__)."""
    got = summary(_dynamic_quantized(), input_size=(3, 16, 16))
    (lint,) = [w for w in got.warnings if w.code == "unfollowed"]
    assert "through torch.ops.quantized.linear_dynamic:" in lint.message
    assert torch.ops.quantized.linear_dynamic._qualified_op_name == "quantized::linear_dynamic"


def test_a_tensor_given_as_input_size_is_told_to_give_its_shape():
    """summary(model, input_size=x) with an image batch (torchinfo takes input_data) printed
    the whole tensor in a 12,000-character message."""
    for x, shape in ((torch.randn(1, 3, 16, 16), "(3, 16, 16) (the tensor's shape without its "
                      "batch)"), (torch.randn(3, 16, 16), "(3, 16, 16)")):  # fmt: skip
        with pytest.raises(CnnlabError) as err:
            summary(_net(), input_size=x)
        assert str(err.value) == f"input_size is a shape (C, H, W), not a tensor: give {shape}"
        assert summary(_net(), input_size=tuple(x.shape[-3:])).rows  # what it says is accepted
