"""`cnnlab import` of models from code: weights saved the way libraries save them, imported
into the wrapper a user writes around the library's model, a wrong weights file refused before
any data is read, and a run imported without --data saying how to give the images. Truths: the
library model's own forward on the same images, a data loader that fails the test if it is
called."""

from __future__ import annotations

import re
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

import cnnlab.train.importing as importing
from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train.importing import import_run
from cnnlab.train.rundir import load_run
from cnnlab.train.source import parse_model_ref
from tiny_nets import imported_run, tiny_net_source

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

HF = """
import torch
import transformers
from torch import nn


class Logits(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(pixel_values=x).logits


def inner():
    torch.manual_seed(0)
    config = transformers.ResNetConfig(
        num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
        layer_type="basic", num_labels=10,
    )
    return transformers.ResNetForImageClassification(config)


def make_net():
    return Logits(inner())
"""


def test_weights_saved_by_save_pretrained_import_into_a_wrapper_with_the_fix_given(tmp_path):
    pytest.importorskip("transformers")
    nets = tmp_path / "hfnets.py"
    nets.write_text(textwrap.dedent(HF))
    source = parse_model_ref(f"{nets}:make_net")
    library = parse_model_ref(f"{nets}:inner").build().eval()
    with torch.no_grad():  # weights a training elsewhere changed
        for p in library.parameters():
            p.add_(0.01 * torch.randn_like(p))
    library.save_pretrained(tmp_path / "saved")  # transformers' own format: model.safetensors
    weights = tmp_path / "saved" / "model.safetensors"
    with pytest.raises(RunError, match="behind 'net.'") as info:
        import_run(source, weights, tmp_path / "run", data="digits", input_shape=(1, 16, 16))
    said = str(info.value)
    fix = re.search(r"\{.*state\.items\(\)\}", said)  # the code the message gives
    assert fix, said  # was: "add the prefix to its names", with no way to do it
    state = load_file(weights)
    save_file(eval(fix.group(0), {"state": state}), tmp_path / "fixed.safetensors")
    import_run(
        source, tmp_path / "fixed.safetensors", tmp_path / "run", data="digits",
        input_shape=(1, 16, 16),
    )  # fmt: skip
    run = load_run(tmp_path / "run")
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(run.model(x), library(pixel_values=x).logits)


# `cnnlab import` checks the weights file before it reads any data: a wrong file fails in
# a moment with its one-line message (exit 2), not after a data set's download or a folder's
# scan. Truth: the data loader, replaced by one that fails the test if it is called.


NET = textwrap.dedent(
    """
    from torch import nn

    def make_net():
        return nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
        )
    """
)


def _files(tmp_path) -> tuple[str, dict[str, torch.Tensor]]:
    (tmp_path / "net.py").write_text(NET)
    ref = f"{tmp_path / 'net.py'}:make_net"
    return ref, parse_model_ref(ref, []).build().state_dict()


WRONG = {  # file name: (what it holds, from the model's state, and what the message says)
    "missing.safetensors": (lambda s: {k: v for k, v in s.items() if k != "4.bias"},
                            "missing from the file: 4.bias"),
    "shape.safetensors": (lambda s: {**s, "4.weight": torch.zeros(3, 4)},
                          "tensor 4.weight is 10×4 in the model but 3×4 in the file"),
    "extra.safetensors": (lambda s: {**s, "4.bias": torch.zeros(3), "other": torch.zeros(1)},
                          "tensor 4.bias is 10 in the model but 3 in the file; not in the "
                          "model: other"),
    "nan.safetensors": (lambda s: {**s, "0.bias": torch.full((4,), float("nan"))},
                        "tensor 0.bias holds NaN"),
    "junk.safetensors": (None, "is not a readable safetensors file"),
    "weights.pt": (None, "weights are read from .safetensors files only"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(WRONG))
def test_a_wrong_weights_file_fails_before_the_data_is_read(tmp_path, monkeypatch, capsys, name):
    ref, state = _files(tmp_path)
    make, says = WRONG[name]
    if make is None:
        (tmp_path / name).write_bytes(b"not a tensor file")
    else:
        save_file(make(state), tmp_path / name)

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the weights were checked")

    monkeypatch.setattr(importing, "load_splits", no_data)
    argv = ["import", "--model", ref, "--weights", str(tmp_path / name), "--data", "digits",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert not (tmp_path / "run").exists()


def test_names_a_forward_may_make_are_checked_after_the_data(tmp_path, capsys):
    """A name the model lacks may be a buffer its first forward registers: it needs the
    input shape (the data's), so it is refused after the data is read, as before."""
    ref, state = _files(tmp_path)
    save_file({**state, "other": torch.zeros(1)}, tmp_path / "w.safetensors")
    argv = ["import", "--model", ref, "--weights", str(tmp_path / "w.safetensors"),
            "--data", str(tmp_path / "no-such-dir"), "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    assert "no-such-dir" in capsys.readouterr().err
    argv[argv.index("--data") + 1] = "digits"
    assert main(argv) == 2
    assert "not in the model: other" in capsys.readouterr().err


def test_with_the_input_shape_given_even_those_names_fail_before_the_data(
    tmp_path, monkeypatch, capsys
):
    ref, state = _files(tmp_path)
    save_file({**state, "other": torch.zeros(1)}, tmp_path / "w.safetensors")

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the weights were checked")

    monkeypatch.setattr(importing, "load_splits", no_data)
    argv = ["import", "--model", ref, "--weights", str(tmp_path / "w.safetensors"),
            "--data", "digits", "--input", "1,8,8", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    assert "not in the model: other" in capsys.readouterr().err


# A run imported without --data (classes, mean, std and input given): the commands that
# need images say how to give them.


NETS = tiny_net_source("make")


def test_a_run_without_data_names_the_way_to_give_it_and_that_way_works(tmp_path, capsys):
    """`eval`, `diagnose` and `probe` of such a run said only 'the run records no data set'.
    The message now names --data (diagnose's option, and import's), and diagnose --data
    then runs."""
    nets = tmp_path / "nets.py"
    nets.write_text(NETS)
    source = parse_model_ref(f"{nets}:make")
    save_file(source.build().state_dict(), tmp_path / "w.safetensors")
    out = tmp_path / "run"
    import_run(source, tmp_path / "w.safetensors", out, classes=list("0123456789"),
               mean=[0.3], std=[0.4], input_shape=[1, 8, 8])  # fmt: skip
    with pytest.raises(RunError, match=r"--data") as info:
        load_run(out).dataset("test")
    assert "diagnose" in str(info.value) and "import" in str(info.value)
    assert main(["eval", str(out)]) == 2
    assert "--data" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["diagnose", str(out), "--data", "digits", "--json"]) == 0
    assert '"dead' in capsys.readouterr().out  # the advice works: units measured


def test_the_report_of_an_imported_run_says_it_was_imported_not_that_training_is_unfinished(
    tmp_path,
):
    """An imported run has no epochs by design; its report said 'training has not completed
    an epoch', as for a run stopped early."""
    out = imported_run(tmp_path, NETS, data="digits")
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "has not completed an epoch" not in page
    assert "imported" in page and "trained elsewhere" in page
