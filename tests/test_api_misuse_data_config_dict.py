"""train(..., config=dict) names TrainConfig(**options) alone: the from_dict it also named
reads a run's config.json and ignores keys it does not know, so a mistyped option ({'epoch':
3}) trained the default 8 epochs without a word. TrainConfig(**options) refuses it."""

from __future__ import annotations

import pytest

from cnnlab.errors import ConfigError
from cnnlab.train import TrainConfig, train


def test_a_dict_config_is_told_the_constructor_that_refuses_typos():
    options = {"epoch": 3}
    with pytest.raises(ConfigError, match=r"TrainConfig\(\*\*options\)") as refused:
        train("fast", "digits", None, options)
    assert "from_dict" not in str(refused.value)
    with pytest.raises(TypeError, match="epoch"):  # the fix named catches the typo
        TrainConfig(**options)
    assert TrainConfig.from_dict(options).epochs == 8  # the one not named does not
