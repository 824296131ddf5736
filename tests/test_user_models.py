"""Models as practitioners write them, brought to cnnlab: the ways they fail to be a plain
classifier of the run's images (a forward that raises, a tuple or dict output, another
dtype, a final softmax, aux logits while training, a view a channels-last map cannot take, a
run of a Python object opened without it) are each one clear error naming the layer and the
fix. Truth: torch's own forward of the same layers and its own error text, and the model's
own outputs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from cnnlab.errors import RunError, SpecError
from cnnlab.inspect import classifier_misfit
from cnnlab.train import TrainConfig, train
from cnnlab.train.rundir import load_run

QUICK = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def small(classes: int = 10) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, classes),
    )  # fmt: skip


class Pair(nn.Module):
    """Logits and an auxiliary head, as a tuple or a dict."""

    def __init__(self, as_dict: bool = False):
        super().__init__()
        self.body, self.as_dict = small(), as_dict
        self.aux = nn.Linear(10, 10)

    def forward(self, x):
        logits = self.body(x)
        return {"logits": logits, "aux": self.aux(logits)} if self.as_dict else (logits, None)


class Asserting(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        assert x.shape[-1] == 28, "this net takes 28×28 images"
        return self.fc(x.flatten(1))


def test_a_failing_layer_is_named_with_the_shape_torch_gave_it():
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    x = torch.zeros(2, 1, 8, 8)
    got = model[:2](x)  # torch's own forward up to the failing layer: (2, 288)
    with pytest.raises(RuntimeError) as torch_error:
        model[2](got)
    misfit = classifier_misfit(model, (1, 8, 8), 10)
    assert misfit.kind == "run"
    shape = "×".join(map(str, got.shape))
    torch_says = str(torch_error.value).splitlines()[0]
    assert misfit.why == f"{torch_says} (in layer 2, a Linear, given {shape})"


def test_train_names_the_layer_and_any_error_of_the_users_forward_is_one_line():
    wrong = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    where = r"cannot run on 1×8×8 images: mat1 .* \(in layer 2, a Linear, given 2×288\)"
    with pytest.raises(SpecError, match=where):
        train(wrong, "digits", None, QUICK)
    # an assert in forward is no RuntimeError: it was a traceback
    where = r"AssertionError: this net.* \(in Asserting.forward, given 2×1×8×8\)"
    with pytest.raises(SpecError, match=where):
        train(Asserting(), "digits", None, QUICK)


@pytest.mark.parametrize(
    ("model", "pick"),
    [(Pair(), r"net\(x\)\[0\]"), (Pair(as_dict=True), r"net\(x\)\['logits'\]")],
)
def test_a_tuple_or_dict_output_says_how_to_return_the_logits(model, pick):
    assert isinstance(model.eval()(torch.zeros(2, 1, 8, 8)), tuple | dict)  # the model's own
    with pytest.raises(SpecError, match=f"returns a (tuple|dict), not a logits tensor.*{pick}"):
        train(model, "digits", None, QUICK)


def test_an_output_object_with_logits_is_told_to_return_them():
    class Output(dict):  # a transformers ModelOutput: a dict whose fields are attributes too
        __getattr__ = dict.__getitem__

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small()

        def forward(self, x):
            return Output(logits=self.net(x))

    misfit = classifier_misfit(Wrapped(), (1, 8, 8), 10)
    assert misfit.kind == "output" and "returns an Output" in misfit.why
    assert "net(x).logits" in misfit.why


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_a_model_of_another_dtype_is_told_to_become_float32(dtype):
    model = small().to(dtype)
    with pytest.raises(RuntimeError):  # torch's own refusal, which was the message
        model(torch.zeros(1, 1, 8, 8))
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(
        SpecError, match=rf"its parameters are {name} \(0.weight\).*model.float\(\)"
    ):
        train(model, "digits", None, QUICK)
    result = train(model.float(), "digits", None, QUICK)  # the fix given works
    assert 0 <= result["val_acc"] <= 1


def test_a_final_softmax_is_refused_before_training_not_trained_twice_softmaxed():
    model = nn.Sequential(small(), nn.Softmax(1))
    probs = model.eval()(torch.randn(4, 1, 8, 8))
    assert torch.allclose(probs.sum(1), torch.ones(4))  # what the check recognises
    with pytest.raises(SpecError, match="ends in a softmax.*return the logits"):
        train(model, "digits", None, QUICK)
    # logits that happen to be non-negative do not sum to 1: no false alarm
    relu_end = nn.Sequential(small(), nn.ReLU())
    assert classifier_misfit(relu_end.eval(), (1, 8, 8), 10) is None


def test_class_indices_instead_of_logits_are_named():
    class Argmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small()

        def forward(self, x):
            return self.net(x).argmax(1)

    misfit = classifier_misfit(Argmax(), (1, 8, 8), 10)
    assert misfit.kind == "output" and "int64 values of shape (2,)" in misfit.why


def test_the_check_leaves_no_hook_behind_and_passes_a_good_model():
    model = small()
    x = torch.randn(3, 1, 8, 8)
    before = model(x)
    assert classifier_misfit(model, (1, 8, 8), 10) is None
    broken = nn.Sequential(nn.Flatten(), nn.Linear(50, 10))
    assert classifier_misfit(broken, (1, 8, 8), 10).kind == "run"
    hooks = [m._forward_hooks or m._forward_pre_hooks for m in [*model.modules(), *broken]]
    assert not any(hooks)
    assert torch.equal(model(x), before)


class AuxWhileTraining(nn.Module):
    """Inception-style: (logits, aux logits) in training mode, logits alone in eval."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.fc, self.aux = nn.Linear(4, 10), nn.Linear(4, 10)

    def forward(self, x):
        h = self.body(x).mean((2, 3))
        return (self.fc(h), self.aux(h)) if self.training else self.fc(h)


def test_a_model_returning_aux_logits_while_training_is_refused_before_a_step():
    model = AuxWhileTraining().eval()
    assert isinstance(model(torch.zeros(2, 1, 8, 8)), torch.Tensor)  # fine in eval mode
    assert isinstance(model.train()(torch.zeros(2, 1, 8, 8)), tuple)  # not while training
    model = AuxWhileTraining().eval()
    stats = [b.clone() for b in model.buffers()]
    with pytest.raises(SpecError, match=r"in training mode returns a tuple.*net\(x\)\[0\]"):
        train(model, "digits", None, QUICK)  # was an AttributeError inside the loss
    assert all(torch.equal(a, b) for a, b in zip(stats, model.buffers(), strict=True))
    assert not model.training  # its mode left as it was


class ViewNet(nn.Module):
    """The tutorials' head: x.view(x.size(0), -1) after a conv."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


def test_view_after_a_conv_trains_nchw_with_a_note_not_a_traceback():
    nhwc = ViewNet().to(memory_format=torch.channels_last)  # torch's own refusal
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        nhwc(torch.zeros(2, 1, 8, 8).contiguous(memory_format=torch.channels_last))
    assert QUICK.channels_last  # the default layout
    torch.manual_seed(0)
    result = train(ViewNet(), "digits", None, QUICK)  # was a RuntimeError traceback at step 1
    (note,) = [n for n in result["notes"] if "trained NCHW, not channels-last" in n]
    assert "view size is not compatible" in note and ".reshape or .flatten(1)" in note
    torch.manual_seed(0)
    nchw = train(ViewNet(), "digits", None, dataclasses.replace(QUICK, channels_last=False))
    assert nchw["val_acc"] == result["val_acc"]  # the same run as one asked NCHW


class ViewNetAndInput(nn.Module):
    """ViewNet as a child, its output returned with the images: a second misfit NCHW."""

    def __init__(self):
        super().__init__()
        self.net = ViewNet()

    def forward(self, x):
        return self.net(x), x


def test_view_in_a_child_of_a_model_with_another_misfit_is_told_that_misfit():
    # NCHW it runs and returns a tuple: that, which NCHW cannot mend, is what is told (before
    # NCHW was the fallback it was told "cannot train channels-last")
    for model in (ViewNetAndInput(), nn.Sequential(ViewNet(), nn.Softmax(dim=1))):
        for config in (QUICK, dataclasses.replace(QUICK, channels_last=False)):
            with pytest.raises(SpecError, match="returns a tuple|ends in a softmax"):
                train(model, "digits", None, config)


def test_a_run_of_a_python_module_says_how_to_open_it_and_that_way_works(tmp_path):
    import cnnlab.train

    result = train(small(), "digits", tmp_path / "run", QUICK)
    with pytest.raises(RunError, match=r"cnnlab\.train\.load_run\(path, model=") as info:
        load_run(tmp_path / "run")
    opener = str(info.value).split("with ", 1)[1].split("(", 1)[0]  # what the message names
    module, name = opener.rsplit(".", 1)
    assert module == "cnnlab.train"
    run = getattr(cnnlab.train, name)(tmp_path / "run", model=small())
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(run.model(x), result["model"](x))  # the model trained (EMA)
