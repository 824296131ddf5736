"""A model from code given where a spec goes is told to pass it as --model: `summary
mynet.py` read the file as YAML ('invalid YAML: mapping values are not allowed'), and `train
mynet.py:make_net` was told it is neither a preset nor a spec file."""

from cnnlab.cli import main

CODE = "from torch import nn\n\n\ndef make_net():\n    return nn.Linear(4, 2)\n"


def test_a_python_file_as_the_spec_is_told_to_use_model(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mynet.py").write_text(CODE)
    assert main(["summary", "mynet.py"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "'mynet.py' is Python code, not a spec: give it as --model "
        "mynet.py:FACTORY (FACTORY: the function in it that returns your "
        "nn.Module)"
    ), err


def test_a_code_reference_as_the_spec_is_told_to_use_model(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mynet.py").write_text(CODE)
    for ref in ("mynet.py:make_net", "mypackage.nets:make_net"):
        assert main(["train", ref, "--data", "digits", "--out", "runs/x"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(f"is a model from code, not a spec: give it as --model {ref}"), err


def test_a_run_directory_as_the_spec_is_told_its_spec_file(tmp_path, capsys, monkeypatch):
    """`summary runs/fast` was told 'cannot read spec file runs/fast: it is not a regular
    file'; the run's spec.yaml is what it takes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "fast").mkdir(parents=True)
    (tmp_path / "runs" / "fast" / "spec.yaml").write_text("input: [1, 8, 8]\nlayers: [flatten]\n")
    assert main(["summary", "runs/fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("runs/fast is a run directory, not a spec: give runs/fast/spec.yaml"), err


def test_a_run_of_model_code_as_the_spec_is_told_to_give_its_code(tmp_path, capsys, monkeypatch):
    """A run trained from code has no spec.yaml: `summary runs/mine` was told 'it is not a
    regular file'; its model is summarized from its code with --model."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    (tmp_path / "runs" / "mine" / "config.json").write_text("{}")
    assert main(["summary", "runs/mine"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "runs/mine is a run directory without a spec.yaml (its model is code): give that code "
        "as --model FILE.py:FACTORY --input C,H,W (config.json names it)"
    ), err


def test_spec_text_without_a_space_after_a_colon_is_told_so(capsys):
    """`input:[1,28,28]` is no YAML key (YAML wants a space after the colon): it was told to
    use --model, and --model then asked for a factory after the colon, a circle. A module
    reference whose package is named like a key (`layers:make_net`) is still code."""
    assert main(["summary", "input:[1,28,28]"]) == 2
    err = capsys.readouterr().err.strip()
    assert "a spec needs input and layers, a space after each colon: {input:" in err, err
    assert "--model" not in err, err
    assert main(["summary", "input: [1,28,28]"]) == 2
    err = capsys.readouterr().err.strip()
    assert "a spec needs input and layers: {input:" in err, err
    assert main(["summary", "layers:make_net"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("is a model from code, not a spec: give it as --model layers:make_net"), err


def test_a_model_reference_without_its_factory_is_told_to_name_it(tmp_path, capsys, monkeypatch):
    """`--model mynet` (mynet.py beside it) was told only that 'mynet' is neither a preset nor
    a spec file, by train, summary and import alike."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mynet.py").write_text(CODE)
    (tmp_path / "w.safetensors").write_bytes(b"")
    for argv in (
        ["train", "--model", "mynet", "--data", "digits", "--out", "runs/x"],
        ["summary", "--model", "mynet", "--input", "1,8,8"],
        ["import", "--model", "mynet", "--weights", "w.safetensors", "--out", "runs/y"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "neither a preset" in err, err
        assert err.endswith(
            "--model mynet.py:FACTORY (FACTORY: the function in it that returns your nn.Module)"
        ), err
