"""streams.safe_json.dumps never refuses what a model or metric may return."""

import math

import numpy as np
import orjson
from hypothesis import given
from hypothesis import strategies as st

from streams.safe_json import dumps

_FLOATS = st.floats(allow_nan=True, allow_infinity=True)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**400), max_value=10**400), _FLOATS,
    st.text(max_size=5), _FLOATS.map(np.float64), st.floats(width=32).map(np.float32),
    st.integers(-(2**63), 2**63 - 1).map(np.int64), st.booleans().map(np.bool_),
    st.lists(_FLOATS, max_size=4).map(np.array))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(), st.booleans()), inner,
                        max_size=4)),
    max_leaves=20)


def _finite_or_null(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite_or_null(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _finite_or_null(v) for k, v in value.items())
    return True


@given(_VALUES)
def test_anything_a_metric_returns_encodes_as_strict_json(value):
    encoded = dumps(value)
    decoded = orjson.loads(encoded)  # strict JSON: orjson refuses NaN and Infinity tokens
    assert _finite_or_null(decoded)


@given(_FLOATS)
def test_a_float_is_itself_when_finite_and_null_otherwise(x):
    assert orjson.loads(dumps({"v": np.float64(x)}))["v"] == (x if math.isfinite(x) else None)
