"""Count the non-finite numbers (NaN, ±inf) in a model's state.

A model can learn one event, still predict finite values, and yet hold an
infinite variance that turns every later prediction into NaN (River's
``StandardScaler`` after ``1e300``). Learning is refused when it adds
non-finite numbers to the state; comparing counts before and after keeps
the infinities some estimators hold on purpose (an empty minimum) out of it.
Walks objects' ``__dict__``/``__slots__``, containers and numpy arrays, each
object once, without recursion.

>>> from river import preprocessing
>>> scaler = preprocessing.StandardScaler()
>>> scaler.learn_one({"x": 1.0}); non_finite(scaler)
0
>>> scaler.learn_one({"x": 1e300}); non_finite(scaler)
1
"""

import math
from typing import Any

import numpy as np

_SCALARS = (str, bytes, bool, int, type(None), type)


def non_finite(root: Any) -> int:
    """How many NaN or infinite floats (array elements included) ``root`` holds."""
    count = 0
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        kind = type(obj)
        if kind is float:
            count += not math.isfinite(obj)
            continue
        if isinstance(obj, _SCALARS) or id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind in "fc":
                count += int(obj.size - np.count_nonzero(np.isfinite(obj)))
            elif obj.dtype.kind == "O":
                stack.extend(obj.ravel().tolist())
        elif isinstance(obj, np.floating):
            count += not math.isfinite(float(obj))
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        else:
            state = getattr(obj, "__dict__", None)
            if state is not None:
                stack.extend(state.values())
            for slot in getattr(kind, "__slots__", ()):
                stack.append(getattr(obj, slot, None))
    return count
