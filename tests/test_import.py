"""`cnnlab import`: a run directory for a model trained elsewhere. The factory is a real file
written here; the truth for the evaluation is torch on the same weights and the digits data,
normalized with torch's own mean/std of the train split."""

import json
import re
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.errors import DataError, RunError, SpecError
from cnnlab.train.importing import EVALUATION, import_run
from cnnlab.train.source import parse_model_ref

NETS = """
from torch import nn

def make_net(width=8, classes=10):
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(width, classes),
    )
"""


@pytest.fixture
def factory(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(textwrap.dedent(NETS))
    return path


def weights_of(tmp_path, factory, name="w.safetensors", **kwargs):
    """Weights of make_net(**kwargs) seeded 0, saved as safetensors; (path, model)."""
    torch.manual_seed(0)
    model = parse_model_ref(f"{factory}:make_net", [f"{k}={v!r}" for k, v in kwargs.items()])
    model = model.build()
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path, model


def test_import_evaluates_as_torch_does_and_writes_the_run(tmp_path, factory):
    weights, model = weights_of(tmp_path, factory, width=6)
    source = parse_model_ref(f"{factory}:make_net", ["width=6"])
    result = import_run(source, weights, tmp_path / "run", "digits")

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    x = train.images.float() / 255
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3), unbiased=False)
    assert result["mean"] == pytest.approx(mean.tolist(), rel=1e-5)
    assert result["std"] == pytest.approx(std.tolist(), rel=1e-5)
    with torch.no_grad():
        logits = model.eval()(
            (test.images.float() / 255 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        )
    expected = (logits.argmax(1) == test.labels).float().mean().item()
    assert result["evaluation"]["accuracy"] == pytest.approx(expected)
    assert result["evaluation"]["n"] == len(test) == 359

    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["kind"] == "code" and config["model"]["args"] == {"width": "6"}
    assert config["classes"] == list(train.classes) and config["input_shape"] == [1, 8, 8]
    assert json.loads((run / EVALUATION).read_text())["accuracy"] == pytest.approx(expected)
    from cnnlab.train.checkpoint import load_weights

    for k, v in model.state_dict().items():
        assert torch.equal(load_weights(run / "model.safetensors")[k], v)


def test_import_without_data_takes_the_options(tmp_path, factory):
    weights, _ = weights_of(tmp_path, factory, classes=3)
    source = parse_model_ref(f"{factory}:make_net", ["classes=3"])
    result = import_run(
        source, weights, tmp_path / "run", classes=["a", "b", "c"], mean=[0.5], std=[0.25],
        input_shape=[1, 16, 16],
    )  # fmt: skip
    assert result["evaluation"] is None and result["classes"] == ["a", "b", "c"]
    assert not (tmp_path / "run" / EVALUATION).exists()


def bad_import(tmp_path, factory, **change):
    """import_run with one thing changed from a good call."""
    weights, _ = weights_of(tmp_path, factory)
    call = {
        "source": parse_model_ref(f"{factory}:make_net", []),
        "weights": weights,
        "out": tmp_path / "run",
        "data": "digits",
    }
    call.update(change)
    return import_run(**call)


def test_shape_mismatch_names_the_tensor(tmp_path, factory):
    weights, _ = weights_of(tmp_path, factory, name="w4.safetensors", width=4)
    with pytest.raises(RunError, match=r"w4.safetensors does not fit.*tensor 0.weight .*8×1×3×3"):
        bad_import(tmp_path, factory, weights=weights)
    assert not (tmp_path / "run").exists()  # nothing written on a refusal


def test_not_finite_weights_are_refused(tmp_path, factory):
    weights, model = weights_of(tmp_path, factory, name="nan.safetensors")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["4.bias"][0] = float("nan")
    save_file(state, weights)
    with pytest.raises(RunError, match="tensor 4.bias holds NaN"):
        bad_import(tmp_path, factory, weights=weights)


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"weights": "model.pt"}, RunError, "safetensors files only"),
        ({"classes": ["a", "b"]}, DataError, "--classes names 2 classes but"),
        ({"classes": [*"abcdefghi", "a"]}, DataError, "--classes names 'a' more than once"),
        ({"mean": [0.1, 0.2]}, DataError, "--mean has 2 values for 1-channel"),
        ({"std": [0.0]}, DataError, "--std must be positive"),
        ({"data": None}, DataError, "without --data"),
        ({"input_shape": [3, 8, 8]}, SpecError, "cannot run on 3×8×8 images: Given groups"),
        ({"input_shape": [1, 8, 8], "data": "no-such-set"}, DataError, "unknown data set"),
    ],
)
def test_bad_options_are_one_clear_error(tmp_path, factory, change, error, words):
    if change.get("weights") == "model.pt":
        change = {"weights": tmp_path / "model.pt"}
        change["weights"].write_bytes(b"\x80\x02pickle")
    with pytest.raises(error, match=words) as info:
        bad_import(tmp_path, factory, **change)
    assert "\n" not in str(info.value)


def test_a_folder_of_mixed_sizes_tells_import_its_own_option(tmp_path, factory):
    from PIL import Image

    for name, side in (("a/0.png", 8), ("a/1.png", 9), ("b/0.png", 8), ("b/1.png", 8)):
        (tmp_path / "imgs" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (side, side)).save(tmp_path / "imgs" / name)
    # the fix named was `cnnlab train --model ... --input C,H,W` alone
    with pytest.raises(DataError, match=r"--input C,H,W to .*`cnnlab import`"):
        bad_import(tmp_path, factory, data=str(tmp_path / "imgs"))


def test_output_count_must_match_classes(tmp_path, factory):
    weights, _ = weights_of(tmp_path, factory, name="w3.safetensors", classes=3)
    source = parse_model_ref(f"{factory}:make_net", ["classes=3"])
    with pytest.raises(DataError, match=r"outputs \(3,\) per image but the run has 10 classes"):
        bad_import(tmp_path, factory, source=source, weights=weights)


def test_import_never_writes_into_a_non_empty_directory(tmp_path, factory):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "mine.txt").write_text("the user's")
    with pytest.raises(RunError, match="not empty"):
        bad_import(tmp_path, factory)
    assert (tmp_path / "run" / "mine.txt").read_text() == "the user's"


def test_cli_import_prints_accuracy_and_bad_reference_is_one_line(tmp_path, factory, capsys):
    weights, _ = weights_of(tmp_path, factory)
    argv = ["import", "--model", f"{factory}:make_net", "--weights", str(weights)]
    assert main([*argv, "--data", "digits", "--out", str(tmp_path / "run")]) == 0
    assert "test accuracy" in capsys.readouterr().out
    bad = ["import", "--model", f"{factory}:nope", "--weights", str(weights)]
    assert main([*bad, "--data", "digits", "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "defines no 'nope'" in err


def test_cli_import_takes_input_as_train_and_summary_do(tmp_path, factory, capsys):
    """--input C,H,W, as train and summary spell it (--input-shape still works); a bad one
    is one line naming the option."""
    weights, _ = weights_of(tmp_path, factory)
    argv = ["import", "--model", f"{factory}:make_net", "--weights", str(weights), "--data"]
    for option, out in (("--input", "a"), ("--input-shape", "b")):
        assert main([*argv, "digits", "--out", str(tmp_path / out), option, "1,8,8"]) == 0
        assert "input 1×8×8" in capsys.readouterr().out
    assert main([*argv, "digits", "--out", str(tmp_path / "c"), "--input", "1,8"]) == 2
    assert capsys.readouterr().err.strip() == (
        "cnnlab import: error: --input '1,8': give C,H,W with C 1 or 3, e.g. 1,28,28"
    )


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """One imported run of digits (random weights) and an 8×8 image file."""
    from PIL import Image

    tmp = tmp_path_factory.mktemp("imported")
    factory = tmp / "nets.py"
    factory.write_text(textwrap.dedent(NETS))
    weights, _ = weights_of(tmp, factory)
    import_run(parse_model_ref(f"{factory}:make_net", []), weights, tmp / "run", "digits")
    Image.new("L", (8, 8), 30).save(tmp / "x.png")
    return tmp


COMMANDS = {
    "eval": [],
    "predict": ["{tmp}/x.png"],
    "diagnose": ["--limit", "50"],
    "explain": ["{tmp}/x.png", "--method", "saliency", "--out", "{tmp}/explain"],
    "visualize": ["--filters", "--out", "{tmp}/vis"],
    "probe": ["--train", "60", "--test", "30", "--epochs", "2"],
    "report": ["--eval-images", "50", "--out", "{tmp}/report.html"],
    "serve": ["--port", "0"],  # served to a test client: serve_once
}


def serve_once(app, sock) -> None:
    """In place of serve's uvicorn loop: the page, the model and one prediction of a test
    image, answered by the app the command built."""
    from fastapi.testclient import TestClient

    sock.close()
    client = TestClient(app)
    page, model, predict = (client.get("/"), client.get("/api/model"),
                            client.post("/api/predict", data={"sample": "0"}))  # fmt: skip
    for response in (page, model, predict):
        assert response.status_code == 200, response.text
    assert sum(predict.json()["probabilities"]) == pytest.approx(1.0)
    assert len(predict.json()["probabilities"]) == len(model.json()["classes"]) == 10


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_commands_work_on_an_imported_run(imported, command, capsys, monkeypatch):
    import cnnlab.cli.serve

    monkeypatch.setattr(cnnlab.cli.serve, "_serve", serve_once)
    extra = [a.format(tmp=imported) for a in COMMANDS[command]]
    code = main([command, str(imported / "run"), *extra])
    assert code == 0, capsys.readouterr().err


def test_import_help_lists_the_commands_that_take_a_run(imported, capsys):
    """`cnnlab import --help` names every command that opens a run (a RUN argument), each run
    above on an imported run, and no other; `train --resume` refuses an imported run."""
    from cnnlab.cli import _parser

    commands = _parser()._subparsers._group_actions[0].choices
    taking_run = {name for name, parser in commands.items()
                  if any(a.metavar == "RUN" for a in parser._actions)}  # fmt: skip
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    listed = re.search(r"write a run directory that (.*?) accept\.", text)[1]
    assert set(re.split(r", | and ", listed)) == taking_run == set(COMMANDS)
    assert main(["train", "--out", str(imported / "run"), "--resume"]) == 2
    assert "made by cnnlab import" in capsys.readouterr().err


def test_classes_alike_from_data_name_the_data_not_classes(tmp_path, factory):
    """Two class folders whose names print alike (Latin-1 bytes and the `\\xe9` escape they are
    shown as) were refused as "--classes names 'caf\\xe9' more than once" when no --classes
    was given; the message names the folder and the fix."""
    import os

    from PIL import Image

    root = tmp_path / "imgs"
    for name in (os.fsdecode(b"caf\xe9"), "caf\\xe9"):
        for i in range(2):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.new("L", (8, 8), 60 * i).save(root / name / f"{i}.png")
    with pytest.raises(DataError) as info:
        bad_import(tmp_path, factory, data=str(root))
    message = str(info.value)
    assert "--classes names" not in message and "\n" not in message
    assert str(root) in message and "rename one of its class folders" in message


def test_images_of_one_value_from_data_name_the_data_not_std(tmp_path, factory):
    """A folder of all-black images was refused as '--std must be positive, got [0.0]' with no
    --std given; the message names the folder and the options that fix it."""
    from PIL import Image

    for name in ("a/0.png", "a/1.png", "b/0.png", "b/1.png"):
        (tmp_path / "imgs" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8)).save(tmp_path / "imgs" / name)
    with pytest.raises(DataError) as info:
        bad_import(tmp_path, factory, data=str(tmp_path / "imgs"))
    message = str(info.value)
    assert "--std must be positive" not in message and "\n" not in message
    assert str(tmp_path / "imgs") in message and "give --mean and --std" in message


def test_an_imported_run_without_its_weights_is_told_to_import_them_again(tmp_path, factory):
    """An imported run has no checkpoint: load_run said 'train the run first' and the report
    'finish it with cnnlab train --resume', which refuses an imported run ('made by cnnlab
    import'). Truth: the weights file config.json records, imported again, opens."""
    from cnnlab.report.html import open_run
    from cnnlab.train.rundir import load_run

    weights, _ = weights_of(tmp_path, factory)
    source = parse_model_ref(f"{factory}:make_net", [])
    import_run(source, weights, tmp_path / "run", "digits")
    (tmp_path / "run" / "model.safetensors").unlink()
    said = f"it was made by cnnlab import: import {weights.resolve()} again, with the --out of a "
    with pytest.raises(RunError, match="has no model.safetensors: " + re.escape(said)):
        load_run(tmp_path / "run")
    assert said in open_run(tmp_path / "run")[1]
    argv = ["import", "--model", f"{factory}:make_net", "--weights", str(weights)]
    assert main([*argv, "--data", "digits", "--out", str(tmp_path / "new")]) == 0
    assert load_run(tmp_path / "new").model is not None  # the advice, followed, opens


def test_import_help_names_the_options_that_stand_for_data(tmp_path, factory, capsys):
    """`--data`'s help names what to give without it; given exactly those, import writes a
    run it does not evaluate, and each one left out is refused by its name."""
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    named = re.split(r", | and ", re.search(r"without --data, give (.*?);", text)[1])
    weights, _ = weights_of(tmp_path, factory, classes=3)
    values = {"--classes": "a,b,c", "--mean": "0.5", "--std": "0.25", "--input": "1,8,8"}
    assert sorted(named) == sorted(values)
    base = ["import", "--model", f"{factory}:make_net", "--model-arg", "classes=3",
            "--weights", str(weights)]  # fmt: skip
    for left_out in named:
        given = [w for o, v in values.items() if o != left_out for w in (o, v)]
        assert main([*base, *given, "--out", str(tmp_path / "refused")]) == 2
        assert "without --data" in capsys.readouterr().err
    given = [w for o, v in values.items() for w in (o, v)]
    assert main([*base, *given, "--out", str(tmp_path / "run")]) == 0
    assert "not evaluated" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "config.json").read_text())["input_shape"] == [1, 8, 8]
