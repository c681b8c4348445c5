"""JSON for the HTTP endpoints that never refuses what a model or metric returns.

River metrics return Python floats, numpy scalars (``ROCAUC`` gives
``numpy.float64``), NaN before they have seen enough, dicts of per-class values
or report objects. Faust's encoder refuses numpy and would answer 500 for the
whole view. :func:`dumps` turns every such value into JSON: numpy scalars and
arrays become numbers and lists, NaN and infinities become ``null``, mappings
become objects with string keys, sets and tuples lists, and anything else its
``str()``; integers beyond 64 bits become floats (null if too large for one).

>>> import math, numpy as np
>>> dumps({"auc": np.float64(0.75), "n": np.int64(3), "nan": math.nan, "inf": -math.inf})
b'{"auc":0.75,"n":3,"nan":null,"inf":null}'
>>> dumps({"per_class": {True: np.float32(0.5), 2: [np.nan]}, "tags": {"a"}})
b'{"per_class":{"true":0.5,"2":[null]},"tags":["a"]}'
>>> dumps({"arr": np.array([1.0, np.inf])})
b'{"arr":[1.0,null]}'
"""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _default(obj: Any) -> Any:
    """What orjson cannot encode by itself, as something it can."""
    if isinstance(obj, np.ndarray | np.generic) and obj.dtype.kind == "c":
        return str(obj)
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, Mapping):
        return {_key(k): v for k, v in obj.items()}
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    return str(obj)


def _key(key: Any) -> Any:
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, int) and not isinstance(key, bool) and not -(2**63) <= key < 2**64:
        return str(key)  # orjson's integer keys are 64-bit too
    return key if isinstance(key, str | int | float | bool) or key is None else str(key)


def _clean(value: Any) -> Any:
    """``value`` with every float that is not finite replaced by None, recursively."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        try:  # orjson's integers are 64-bit
            return _finite(float(value))
        except OverflowError:
            return None
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_key(k): _clean(v) for k, v in value.items()}
    return value


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON; never raises for the types described above."""
    return orjson.dumps(_clean(value), default=_default, option=_OPTIONS)


def metric_value(metric: Any) -> Any:
    """What ``metric.get()`` returns, or the metric's text when it has no single value.

    River's ``ClassificationReport.get()`` raises ``NotImplementedError``; a
    metric must never take a view down.

    >>> from river import metrics
    >>> metric_value(metrics.Accuracy()), metric_value(metrics.ClassificationReport())[:10]
    (0.0, '          ')
    """
    try:
        return metric.get()
    except Exception:
        return repr(metric)


def metric_number(metric: Any) -> float:
    """``metric``'s value as a float for a Prometheus gauge; NaN when it is not a number.

    >>> from river import metrics
    >>> metric_number(metrics.Accuracy()), metric_number(metrics.ClassificationReport())
    (0.0, nan)
    """
    value = metric_value(metric)
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return math.nan
    return float(value)
