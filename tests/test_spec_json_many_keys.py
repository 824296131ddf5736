"""A .json spec of many keys (within MAX_TEXT) is read at once: the repeated-key check counted
every key once per key, and 40,000 keys (509 KB, under the limit) took minutes, a hang."""

from __future__ import annotations

import json
import time

import pytest

from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError


def test_a_json_spec_of_many_keys_is_refused_at_once(tmp_path):
    path = tmp_path / "many.json"
    path.write_text(json.dumps({f"k{i}": 1 for i in range(40_000)}))
    start = time.perf_counter()
    with pytest.raises(SpecError, match="unknown spec key 'k0'"):
        load_spec(path)
    assert time.perf_counter() - start < 5


def test_a_repeated_key_is_still_refused(tmp_path):
    path = tmp_path / "twice.json"
    path.write_text('{"input": [1, 8, 8], "layers": ["relu"], "input": [1, 9, 9]}')
    with pytest.raises(SpecError, match="invalid JSON: the key 'input' appears twice"):
        load_spec(path)
