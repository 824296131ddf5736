"""errors.py: every cnnlab error is a CnnlabError and a ValueError (team contract), so a user's
`except ValueError` around any cnnlab call catches bad input, e.g. summary's input_size."""

from __future__ import annotations

import pytest

import cnnlab
from cnnlab.errors import CnnlabError, DataError, RunError, SpecError


@pytest.mark.parametrize("error", [CnnlabError, SpecError, DataError, RunError])
def test_every_error_is_a_cnnlab_error_and_a_value_error(error):
    assert issubclass(error, CnnlabError) and issubclass(error, ValueError)


def test_summary_bad_input_size_is_a_value_error():
    with pytest.raises(ValueError, match="input_size"):
        cnnlab.summary(cnnlab.build("mlp"), input_size=(28, 28))
