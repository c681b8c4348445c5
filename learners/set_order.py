"""Give every set inside a River model an iteration order that depends on its elements only.

A Python set iterates in the order of its hash table, and that table depends on the order
its elements went in, not only on which they are. Pickle writes a set in iteration order
and reading it back inserts the elements in that order, which can lay them out
differently: ``compose.Select('x0', 'x1', 'x2')`` then emits its features in another order
after a checkpoint round-trip, and a naive Bayes or linear model downstream sums the same
floats in another order (predictions differing in the last bit). :func:`canonical_sets`
refills each set in place in one fixed element order, so a freshly built model and a
restored one lay out their sets identically (under the same ``PYTHONHASHSEED``).

>>> from river import compose
>>> select = canonical_sets(compose.Select("x2", "x0", "x1"))
>>> list(select.keys) == list(set(sorted(select.keys)))
True
"""

from collections import deque
from typing import Any

import numpy as np

_OWNERS = frozenset({"river", "learners"})
_SKIP = (str, bytes, int, float, complex, bool, type(None), np.ndarray, np.generic, type)


_PLAIN = (str, int, float, bool, bytes, type(None))


def _plain(element: Any) -> bool:
    """Whether ``element`` is what River keeps in sets: feature names, labels, tuples of them
    (their repr is cheap, cannot fail and does not depend on hash order)."""
    if type(element) is tuple:
        return all(_plain(e) for e in element)
    return type(element) in _PLAIN


def _order_key(element: Any) -> tuple[str, str]:
    return type(element).__qualname__, repr(element)


def _refill(items: set[Any]) -> None:
    """Re-insert ``items`` in one order of their values; a set holding anything else (an
    object whose repr could be costly, or fail on a corrupt state) is left as it is."""
    if not all(_plain(e) for e in items):
        return
    ordered = sorted(items, key=_order_key)
    items.clear()  # back to the smallest table, as a new set
    items.update(ordered)


def _children(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, deque, frozenset)):
        return list(obj)
    if type(obj).__module__.partition(".")[0] not in _OWNERS:
        return []  # not River's or ours: a function, a module, a lock...
    state = getattr(obj, "__dict__", None)
    return list(state.values()) if isinstance(state, dict) else []


def canonical_sets(model: Any) -> Any:
    """Refill, in place, every plain ``set`` reachable from ``model`` (through the attributes
    of River's and Driftline's objects, dicts, lists, tuples and deques) in one order of its
    elements; return ``model``.

    Elements keep their identity and each set its contents; only the layout changes. Sets
    of anything but strings, numbers, bytes, None and tuples of those are left alone.
    """
    seen: set[int] = set()
    stack = [model]
    while stack:
        obj = stack.pop()
        if isinstance(obj, _SKIP) or id(obj) in seen:
            continue
        seen.add(id(obj))
        if type(obj) is set:
            _refill(obj)
            stack.extend(obj)
            continue
        stack.extend(_children(obj))
    return model
