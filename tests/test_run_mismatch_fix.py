"""A run whose model.safetensors does not fit the model built now says how to fix it, not only
which tensor differs: the spec, code or instance the weights were trained with back, or a new
run of the model as it is (the command spelled out). Truth: the runs' own records."""

from __future__ import annotations

import shutil
import textwrap

import pytest
from torch import nn

from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, train
from cnnlab.train.rundir import load_run
from cnnlab.train.source import parse_model_ref

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

TINY = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [{"conv": {"filters": 4, "kernel": 3}}, "relu", "gap", {"linear": 10}],
}
NETS = textwrap.dedent(
    """
    from torch import nn

    def make_net(width=4, act="relu"):
        return nn.Sequential(
            nn.Conv2d(1, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(width, 10),
        )
    """
)
CONFIG = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")


def _net(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(width, 10),
    )  # fmt: skip


def test_a_spec_run_says_restore_the_spec_or_train_it_anew(tmp_path):
    out = tmp_path / "run"
    train(TINY, "digits", out, CONFIG)
    spec = out / "spec.yaml"
    spec.write_text(spec.read_text().replace("filters: 4", "filters: 5"))
    with pytest.raises(RunError) as got:
        load_run(out)
    text = str(got.value)
    assert "does not match" in text and "restore the spec they were trained with" in text
    assert f"cnnlab train {spec} --data digits --out NEW_RUN" in text


def test_a_code_run_says_restore_the_code_or_train_it_anew_with_its_arguments(tmp_path):
    nets = tmp_path / "nets.py"
    nets.write_text(NETS)
    out = tmp_path / "run"
    train(parse_model_ref(f"{nets}:make_net", ["width=6", "act='relu'"]), "digits", out, CONFIG)
    nets.write_text(NETS.replace("(1, width, 3)", "(1, width + 1, 3)"))
    with pytest.raises(RunError) as got:
        load_run(out, accept_changed=True)
    text = str(got.value)
    assert f"does not match the model of {nets}:make_net" in text and "restore that code" in text
    assert (
        f"cnnlab train --model {nets}:make_net --model-arg width=6 --model-arg \"act='relu'\" "
        "--data digits --out NEW_RUN" in text
    )


def test_a_run_of_a_python_object_says_to_pass_the_instance_it_was_trained_with(tmp_path):
    out = tmp_path / "run"
    train(_net(4), "digits", out, CONFIG)
    with pytest.raises(RunError, match="does not match.*pass load_run\\(model=...\\) a fresh"):
        load_run(out, model=_net(5))
    shutil.rmtree(out)


def test_an_imported_run_says_restore_the_code_or_import_weights_that_fit(tmp_path, capsys):
    from cnnlab.cli import main
    from cnnlab.train import checkpoint

    nets = tmp_path / "nets.py"
    nets.write_text(NETS)
    weights = tmp_path / "w.safetensors"
    checkpoint.save_weights(weights, _net(4).state_dict())
    out = tmp_path / "run"
    argv = ["import", "--model", f"{nets}:make_net", "--weights", str(weights)]
    assert main([*argv, "--data", "digits", "--out", str(out)]) == 0
    nets.write_text(NETS.replace("width=4", "width=3"))
    with pytest.raises(RunError) as got:
        load_run(out, accept_changed=True)
    text = str(got.value)
    assert "restore the code the weights were imported for" in text
    assert f"cnnlab import --model {nets}:make_net --weights FILE --data digits" in text


def test_a_code_run_holding_another_runs_weights_is_not_only_told_its_code_changed(tmp_path):
    nets = tmp_path / "nets.py"
    nets.write_text(NETS)
    spec_run, code_run = tmp_path / "spec_run", tmp_path / "code_run"
    train(TINY, "digits", spec_run, CONFIG)
    train(parse_model_ref(f"{nets}:make_net"), "digits", code_run, CONFIG)
    shutil.copy(spec_run / "model.safetensors", code_run / "model.safetensors")
    with pytest.raises(RunError, match="or the weights copied from another run"):
        load_run(code_run)  # the code is as trained: its hash is the one recorded


def test_an_import_without_data_is_told_its_own_inputs_and_model_args(tmp_path, capsys):
    """An import given --classes, --mean, --std and --input instead of --data was told
    '--data None', and its --model-arg was left out of the import command given."""
    from cnnlab.cli import main
    from cnnlab.train import checkpoint

    nets = tmp_path / "nets.py"
    nets.write_text(NETS)
    weights = tmp_path / "w.safetensors"
    checkpoint.save_weights(weights, _net(6).state_dict())
    out = tmp_path / "run"
    argv = ["import", "--model", f"{nets}:make_net", "--model-arg", "width=6"]
    argv += ["--weights", str(weights), "--classes", ",".join("abcdefghij")]
    assert (
        main([*argv, "--mean", "0.5", "--std", "0.25", "--input", "1,8,8", "--out", str(out)]) == 0
    )
    nets.write_text(NETS.replace("(1, width, 3)", "(1, width + 1, 3)"))
    with pytest.raises(RunError) as got:
        load_run(out, accept_changed=True)
    text = str(got.value)
    assert "None" not in text
    assert (
        f"cnnlab import --model {nets}:make_net --model-arg width=6 --weights FILE --classes "
        "a,b,c,d,e,f,g,h,i,j --mean 0.5 --std 0.25 --input 1,8,8 --out NEW_RUN" in text
    ), text
