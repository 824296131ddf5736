"""`cnnlab import` checks the weights file before it reads any data: a wrong file fails in
a moment with its one-line message (exit 2), not after a data set's download or a folder's
scan. Truth: the data loader, replaced by one that fails the test if it is called."""

from __future__ import annotations

import textwrap

import pytest
import torch
from safetensors.torch import save_file

import cnnlab.train.importing as importing
from cnnlab.cli import main
from cnnlab.train.source import parse_model_ref

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

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
