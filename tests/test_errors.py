"""errors.py: every bad-input error is a CnnlabError and a ValueError (so a user's
`except ValueError` around any cnnlab call catches bad input), and a diverged training is
neither: it is not the user's input that was wrong, and the CLI gives it its own exit code."""

from __future__ import annotations

import pytest

import cnnlab
from cnnlab import errors
from cnnlab.cli import main
from cnnlab.errors import (
    CnnlabError,
    ConfigError,
    DataError,
    ExplainError,
    ReportError,
    RunError,
    SpecError,
    TrainingDiverged,
)


@pytest.mark.parametrize(
    "error", [CnnlabError, SpecError, DataError, RunError, ConfigError, ExplainError, ReportError]
)
def test_every_error_is_a_cnnlab_error_and_a_value_error(error):
    assert issubclass(error, CnnlabError) and issubclass(error, ValueError)


def test_diverged_is_not_bad_input():
    assert not issubclass(TrainingDiverged, ValueError)
    assert not issubclass(TrainingDiverged, CnnlabError)
    assert errors.EXIT_DIVERGED not in (0, 1, errors.EXIT_BAD_INPUT)


def test_a_lost_rank_is_neither_bad_input_nor_divergence():
    """A DDP peer that stopped answering: not the user's input, not the run blowing up; a
    RuntimeError (what torch's collectives raise), with an exit code of its own."""
    assert issubclass(errors.RankLost, RuntimeError)
    assert not issubclass(errors.RankLost, (ValueError, CnnlabError, TrainingDiverged))
    codes = (0, 1, errors.EXIT_BAD_INPUT, errors.EXIT_DIVERGED, errors.EXIT_RANK_LOST, 130)
    assert len(set(codes)) == len(codes)


def test_every_public_error_class_lives_in_errors_py():
    """The classes other modules re-export are the same objects as errors.py's."""
    from cnnlab import train

    assert train.ConfigError is ConfigError and train.TrainingDiverged is TrainingDiverged
    assert train.RankLost is errors.RankLost


def test_cli_exit_codes(monkeypatch, capsys):
    """A CnnlabError exits 2, TrainingDiverged 3, each with one line on stderr."""
    import cnnlab.cli.train as cli_train

    def raiser(error):
        def run(args):
            raise error

        return run

    for error, code in ((RunError("bad run"), 2), (TrainingDiverged("blew up"), 3)):
        monkeypatch.setattr(cli_train, "_train", raiser(error))
        assert main(["train", "--preset", "fast", "--out", "x"]) == code
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(error) in err


def test_summary_bad_input_size_is_a_value_error():
    with pytest.raises(ValueError, match="input_size"):
        cnnlab.summary(cnnlab.build("mlp"), input_size=(28, 28))


def test_the_package_loads_torch_on_first_use_and_still_lists_its_names():
    """`import cnnlab` (and the command's dispatcher) must not import torch, so a Ctrl-C
    during start-up is caught; the lazy names are still the functions and in dir()."""
    import subprocess
    import sys

    code = (
        "import sys, cnnlab, cnnlab.cli; assert 'torch' not in sys.modules; "
        "names = set(dir(cnnlab)); assert set(cnnlab.__all__) <= names, names; "
        "import cnnlab.design.summary as m; assert cnnlab.summary is m.summary; "
        "assert callable(cnnlab.build) and callable(cnnlab.load_spec)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
