"""Models from code that cannot train or be explained as they are, and what cnnlab says:
one line naming the problem and the fix, exit 2, no traceback, no run directory left
behind (an MLP asked for Grad-CAM, NaN logits at step 1, (B, 1, K) scores, code for other
images imported, a model frozen whole or cut from the graph, a meta-device or float16 model,
a factory that calls .cuda(), the layer where a forward failed). Truth: torch's own
behaviour on the same models."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from cnnlab.cli import main
from cnnlab.errors import SpecError
from cnnlab.inspect import classifier_misfit
from cnnlab.train import import_run, load_run
from cnnlab.train.source import parse_model_ref

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

QUICK = ["--epochs", "1", "--batch-size", "128", "--no-flip", "--no-tta", "--precision", "fp32"]


MLP = textwrap.dedent(
    """
    from torch import nn

    def make_net(hidden=16):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, 10),
        )
    """
)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    """An MLP (no conv, no map) imported with random weights on digits, and an 8×8 image."""
    tmp = tmp_path_factory.mktemp("mlp")
    (tmp / "mlp.py").write_text(MLP)
    source = parse_model_ref(f"{tmp / 'mlp.py'}:make_net", [])
    torch.manual_seed(0)
    save_file(source.build().state_dict(), tmp / "w.safetensors")
    import_run(source, tmp / "w.safetensors", tmp / "run", "digits")
    Image.new("L", (8, 8), 30).save(tmp / "x.png")
    return tmp


def test_explain_of_a_model_without_maps_says_which_methods_work(mlp_run, capsys):
    """Grad-CAM, the default, said only 'the model has no layer with a spatial (B, C, H, W)
    output, H·W > 1', leaving the user to guess that saliency needs no map."""
    argv = ["explain", str(mlp_run / "run"), str(mlp_run / "x.png"), "--out", str(mlp_run)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--method saliency or smoothgrad" in err
    assert main([*argv, "--method", "saliency"]) == 0


NAN = textwrap.dedent(
    """
    from torch import nn

    class Nan(nn.Module):
        '''Its forward makes NaN at any weights: 0 · inf.'''

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def forward(self, x):
            return self.net(x) * float("inf") * 0

    def make_net():
        return Nan()
    """
)


def test_a_loss_not_finite_before_any_update_blames_the_model_not_the_rate(tmp_path, capsys):
    """The first batch's loss is the factory's weights' own: training said 'the learning
    rate is probably too high; start again with --lr ...', which cannot help."""
    (tmp_path / "nan.py").write_text(NAN)
    argv = ["train", "--model", f"{tmp_path / 'nan.py'}:make_net", "--data", "digits"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--quiet", *QUICK]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "learning rate is probably" not in err
    assert "nan on the first batch" in err and "before any update" in err


class QueryHead(nn.Module):
    """Attention pooling with one learned query: (B, 1, C) out of the tokens, then the
    classifier on it, leaving (B, 1, K)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.query = nn.Parameter(torch.randn(1, 1, 8))
        self.attend = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        tokens = self.stem(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        pooled, _ = self.attend(self.query.expand(len(x), -1, -1), tokens, tokens)
        return self.fc(pooled)


def test_class_scores_behind_a_singleton_dim_are_told_to_be_flattened():
    """(B, 1, K) was told 'outputs (1, 10) per image but the data has 10 classes; give it
    10 outputs': it has them. torch's loss refuses it as it is and takes it flattened."""
    model = QueryHead().eval()
    out = model(torch.zeros(4, 1, 8, 8))
    assert out.shape == (4, 1, 10)
    with pytest.raises((RuntimeError, ValueError)):
        torch.nn.functional.cross_entropy(out, torch.zeros(4, dtype=torch.long))
    torch.nn.functional.cross_entropy(out.flatten(1), torch.zeros(4, dtype=torch.long))
    misfit = classifier_misfit(model, (1, 8, 8), 10)
    assert misfit.kind == "output" and "(1, 10) per image" in misfit.why
    assert "x.flatten(1)" in misfit.why and "give it" not in misfit.why
    assert classifier_misfit(nn.Sequential(model, nn.Flatten()), (1, 8, 8), 10) is None


RGB = textwrap.dedent(
    """
    from torch import nn

    def make_net():
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4, 10),
        )
    """
)


def test_import_of_code_for_other_images_says_to_give_input_and_that_way_works(tmp_path, capsys):
    """train said 'if it takes other images, give --input C,H,W'; import, whose --input
    converts the data the same way, named only torch's channel error."""
    (tmp_path / "rgb.py").write_text(RGB)
    source = parse_model_ref(f"{tmp_path / 'rgb.py'}:make_net", [])
    save_file(source.build().state_dict(), tmp_path / "w.safetensors")
    argv = ["import", "--model", source.reference, "--weights", str(tmp_path / "w.safetensors")]
    assert main([*argv, "--data", "digits", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "expected input" in err
    assert err.endswith("give --input C,H,W (the data is converted)")
    assert main([*argv, "--data", "digits", "--out", str(tmp_path / "b"), "--input", "3,8,8"]) == 0


FROZEN = textwrap.dedent(
    """
    from torch import nn

    def net():
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4, 10),
        )

    def frozen():
        return net().requires_grad_(False)

    def head_only():
        model = net()
        model[0].requires_grad_(False)
        return model
    """
)


def test_a_model_frozen_whole_is_told_there_is_nothing_to_train(tmp_path, capsys):
    """It raised torch's 'element 0 of tensors does not require grad' as a traceback at the
    first backward, leaving a run directory behind. A model frozen in part trains its rest."""
    (tmp_path / "frz.py").write_text(FROZEN)
    argv = ["train", "--data", "digits", "--quiet", *QUICK]
    out = tmp_path / "frozen"
    assert main([*argv, "--model", f"{tmp_path / 'frz.py'}:frozen", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing to train" in err and "requires_grad" in err
    assert not out.exists()
    out = tmp_path / "head"
    assert main([*argv, "--model", f"{tmp_path / 'frz.py'}:head_only", "--out", str(out)]) == 0
    torch.manual_seed(0)  # train seeds the factory with the run's seed, 0 by default
    start = parse_model_ref(f"{tmp_path / 'frz.py'}:head_only", []).build()
    trained = load_run(out).model
    assert torch.equal(trained[0].weight, start[0].weight)  # frozen: as built
    assert not torch.equal(trained[4].weight, start[4].weight)  # trained


DEVICES = textwrap.dedent(
    """
    import torch
    from torch import nn

    def net():
        return nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
        )

    def meta():
        with torch.device("meta"):  # fast to build, no values
            return net()

    def half():
        return net().half()
    """
)


@pytest.mark.parametrize(
    ("factory", "words"),
    [("meta", "on the meta device (0.weight"), ("half", "its parameters are float16 (0.weight)")],
)
def test_parameters_without_values_or_of_another_dtype_need_no_other_input(
    tmp_path, capsys, factory, words
):
    """A model built under torch.device('meta') was told torch's 'Tensor on device meta is
    not on the expected device cpu! ...; if it takes other images, give --input C,H,W'; a
    float16 one was told to give --input too. Neither is about the images."""
    (tmp_path / "dev.py").write_text(DEVICES)
    ref = f"{tmp_path / 'dev.py'}:{factory}"
    argv = ["train", "--model", ref, "--data", "digits", "--out", str(tmp_path / "run")]
    assert main([*argv, "--quiet", *QUICK]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "--input" not in err
    model = parse_model_ref(ref, []).build()
    assert classifier_misfit(model, (1, 8, 8), 10).kind == "weights"
    if factory == "meta":  # the fix the message gives
        model.to_empty(device="cpu")
        for layer in (model[0], model[3]):
            layer.reset_parameters()
        assert classifier_misfit(model, (1, 8, 8), 10) is None


NO_GRAPH = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, mode):
            super().__init__()
            self.mode = mode
            self.body = nn.Sequential(
                nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                nn.Linear(4, 10),
            )

        def forward(self, x):
            if self.mode == "no_grad":  # written for inference
                with torch.no_grad():
                    return self.body(x)
            if self.mode == "inference_mode":
                with torch.inference_mode():
                    return self.body(x)
            return self.body(x).detach()

    def make_net(mode):
        return Net(mode)
    """
)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "detach"])
def test_a_forward_that_cuts_the_graph_is_told_before_a_run_directory_is_made(
    tmp_path, capsys, mode
):
    """It raised torch's 'element 0 of tensors does not require grad' as a traceback at the
    first backward and left config.json and metrics.jsonl behind."""
    (tmp_path / "ng.py").write_text(NO_GRAPH)
    out = tmp_path / "run"
    argv = ["train", "--model", f"{tmp_path / 'ng.py'}:make_net", "--model-arg", f"mode={mode!r}"]
    assert main([*argv, "--data", "digits", "--out", str(out), "--quiet", *QUICK]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "carry no gradient" in err and not out.exists()


GPU = textwrap.dedent(
    """
    from torch import nn

    def make_net():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).cuda()  # research code's habit

    def broken():
        raise ValueError("no such width")
    """
)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the factory runs where there is CUDA")
def test_a_factory_that_moves_the_model_to_a_gpu_is_told_to_return_it_on_the_cpu(tmp_path):
    """'gpu() raised AssertionError: Torch not compiled with CUDA enabled' named no fix."""
    (tmp_path / "gpu.py").write_text(GPU)
    with pytest.raises(SpecError) as raised:
        parse_model_ref(f"{tmp_path / 'gpu.py'}:make_net", []).build()
    assert "CUDA" in str(raised.value) and "return the model on the CPU" in str(raised.value)
    with pytest.raises(SpecError) as raised:
        parse_model_ref(f"{tmp_path / 'gpu.py'}:broken", []).build()
    assert str(raised.value).endswith("raised ValueError: no such width")


def test_an_input_size_beyond_what_an_image_may_hold_is_one_line(tmp_path, capsys):
    """--input 1,20000,40000 on an image folder raised Pillow's DecompressionBombError as a
    traceback while resizing; a named set would have tried to fill the memory."""
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (12, 8), 40 * i).save(tmp_path / "data" / name / f"{i}.png")
    (tmp_path / "rgb.py").write_text(RGB)
    argv = ["train", "--model", f"{tmp_path / 'rgb.py'}:make_net", "--out", str(tmp_path / "r")]
    for data in (str(tmp_path / "data"), "digits"):
        assert main([*argv, "--data", data, "--input", "1,20000,40000", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "20000×40000" in err and "--input" in err


@pytest.mark.parametrize(("module", "what"), [("os", "frozen"), ("sys", "built in")])
def test_a_module_without_a_python_file_is_not_called_missing(module, what):
    """`--model os:getcwd` said 'no module os on the Python path': os is there, with no .py
    file whose hash a run could record."""
    assert importlib.util.find_spec(module) is not None
    with pytest.raises(SpecError) as raised:
        parse_model_ref(f"{module}:f", []).build()
    assert f"module {module} is {what}, not a .py file" in str(raised.value)
    assert "no module" not in str(raised.value)


# Messages a user reads about their own model: the layer where a forward failed is named
# with its article ("an AvgPool2d", "a Linear"; it said "a AvgPool2d"). Truth: torch's own
# error for the same input, which the message quotes.


@pytest.mark.parametrize(
    ("pool", "article"), [(nn.AvgPool2d(4), "an AvgPool2d"), (nn.MaxPool2d(4), "a MaxPool2d")]
)
def test_the_failing_layer_is_named_with_its_article(pool, article):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), pool, nn.Flatten(), nn.Linear(2, 3))
    with pytest.raises(RuntimeError) as torch_says:
        model(torch.zeros(2, 1, 5, 5))
    misfit = classifier_misfit(model, (1, 5, 5), 3)
    first = " ".join(str(torch_says.value).split())
    assert misfit.why == f"{first} (in layer 1, {article}, given 2×2×3×3)"
