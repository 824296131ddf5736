"""A layer kind from another library that no spec kind computes gets no 'did you mean': the
nearest spelling named a different operation (a windowed maxpool for a global max pool,
adaptiveconcatpool for AdaptiveMaxPool2d)."""

import pytest

from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError


@pytest.mark.parametrize("kind", ["AdaptiveMaxPool2d", "GlobalMaxPool", "GlobalMaxPooling2D"])
def test_a_global_max_pool_is_given_no_wrong_suggestion(kind):
    with pytest.raises(SpecError) as caught:
        load_spec({"input": [1, 8, 8], "layers": [kind, "flatten", {"linear": 2}]})
    assert "did you mean" not in str(caught.value) and kind in str(caught.value)


def test_a_kind_with_a_near_spelling_is_still_suggested():
    with pytest.raises(SpecError, match=r"did you mean gap\?"):
        load_spec({"input": [1, 8, 8], "layers": ["AdaptiveAvgPool2d", {"linear": 2}]})
