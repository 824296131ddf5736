"""load_run: a run directory read back (weights from safetensors, statistics, data)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import cnnlab
from cnnlab.data import load_dataset
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, checkpoint, train
from cnnlab.train.rundir import load_run

TINY = {
    "name": "tiny",
    "input": [1, 8, 8],
    "layers": [
        {"conv": {"filters": 8, "kernel": 3, "padding": "same"}},
        "batchnorm",
        "relu",
        "gap",
        {"linear": 10},
    ],
}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(TINY, "digits", out, TrainConfig(epochs=1, batch_size=64, flip=False, tta=False))
    return out


def test_load_run_restores_weights_and_statistics(run_dir):
    run = load_run(run_dir)
    saved = checkpoint.load_weights(run_dir / "model.safetensors")
    state = run.model.state_dict()
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    assert not run.model.training
    assert run.classes == tuple(str(i) for i in range(10))
    assert run.input_shape == (1, 8, 8)
    config = json.loads((run_dir / "config.json").read_text())
    assert run.mean == tuple(config["mean"]) and run.config["epochs"] == 1
    assert run.spec.name == "tiny"
    assert [r["epoch"] for r in run.metrics()] == [1]


def test_preprocess_is_the_training_normalization(run_dir):
    """Truth: (x / 255 − mean) / std written out by hand; float input in [0, 1] agrees."""
    run = load_run(run_dir)
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    expected = (x.float() / 255 - run.mean[0]) / run.std[0]
    assert torch.allclose(run.preprocess(x), expected, atol=1e-6)
    assert torch.allclose(run.preprocess(x.float() / 255), expected, atol=1e-6)
    assert run.preprocess(x[0]).shape == (1, 1, 8, 8)  # one (C, H, W) image


def test_dataset_is_the_runs_data(run_dir):
    run = load_run(run_dir)
    ds, expected = run.dataset("test"), load_dataset("digits", "test")
    assert torch.equal(ds.images, expected.images) and torch.equal(ds.labels, expected.labels)


def test_missing_parts_are_named(run_dir, tmp_path):
    with pytest.raises(RunError, match="not a run directory"):
        load_run(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(RunError, match="no model.safetensors.*--resume"):
        load_run(broken)
    (broken / "spec.yaml").unlink()
    with pytest.raises(RunError, match="no spec.yaml"):
        load_run(broken)


def test_config_without_statistics_and_mismatched_weights(run_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    config = json.loads((other / "config.json").read_text())
    del config["mean"]
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="lacks mean"):
        load_run(other)
    shutil.copy(run_dir / "config.json", other / "config.json")
    checkpoint.save_weights(other / "model.safetensors", torch.nn.Linear(2, 2).state_dict())
    with pytest.raises(RunError, match="does not match.*missing from the file: .*not in the model: "
                       "(bias, weight|weight, bias)"):  # fmt: skip
        load_run(other)


def test_a_spec_edited_after_training_names_the_tensor_that_differs(run_dir, tmp_path):
    """Truth: the shapes of the state_dicts themselves."""
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    spec = cnnlab.load_spec(other / "spec.yaml").to_dict()
    conv = next(
        i for i, layer in enumerate(spec["layers"]) if isinstance(layer, dict) and "conv" in layer
    )
    trained = load_run(run_dir).model.state_dict()
    key = f"{conv}.weight"
    spec["layers"][conv]["conv"]["filters"] += 1
    (other / "spec.yaml").write_text(cnnlab.load_spec(spec).to_yaml())
    want = "×".join(str(n) for n in trained[key].shape)
    with pytest.raises(RunError) as err:
        load_run(other)
    message = str(err.value)
    assert f"tensor {key} is " in message and f"but {want} in the file" in message
    assert "\n" not in message
