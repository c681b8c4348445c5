"""Build a River pipeline from its text form, safely: parsed with ``ast``, never ``eval``.

Accepted: calls ``module.Class(...)`` of classes from River's estimator modules
(``optim.losses.Log()`` style sub-modules too), literal arguments (numbers,
strings, booleans, None, lists, tuples, dicts, nested River calls) and ``|``
between steps. Anything else is rejected with one line naming the offending
part.

>>> model = build_pipeline(
...     "preprocessing.StandardScaler() | linear_model.LogisticRegression(l2=0.001)")
>>> type(model).__name__, list(model.steps)
('Pipeline', ['StandardScaler', 'LogisticRegression'])
>>> build_pipeline("linear_model.LinearRegression(optimizer=optim.SGD(0.01))").optimizer.lr
Constant({'learning_rate': 0.01})
>>> build_pipeline("__import__('os').system('true')")
Traceback (most recent call last):
...
learners.exceptions.PipelineSyntaxError: '__import__('os')' is not allowed: use module.Class(...)
"""

import ast
import importlib
import inspect
import types
from typing import Any

from river import base

from learners.exceptions import PipelineSyntaxError

ESTIMATOR_MODULES = frozenset({
    "anomaly", "cluster", "compose", "covariance", "drift", "ensemble", "facto",
    "feature_extraction", "feature_selection", "forest", "imblearn", "linear_model",
    "metrics", "misc", "model_selection", "multiclass", "multioutput", "naive_bayes",
    "neighbors", "neural_net", "optim", "preprocessing", "proba", "rules", "sketch", "stats",
    "time_series", "tree",
})


def build_pipeline(text: str) -> Any:
    """Parse ``text`` and return a fresh River estimator (a Pipeline for ``a | b``)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise PipelineSyntaxError(f"not a valid expression: {exc.msg}") from None
    return _build(tree.body)


def _src(node: ast.AST) -> str:
    return ast.unparse(node)


def _build(node: ast.AST) -> Any:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _build(node.left), _build(node.right)
        try:
            return left | right
        except Exception as exc:
            raise PipelineSyntaxError(f"'{_src(node)}' cannot be chained: {exc}") from None
    if isinstance(node, ast.Call):
        return _call(node)
    raise PipelineSyntaxError(
        f"'{_src(node)}' is not allowed: steps are River classes called as module.Class(...) "
        "joined by |")


def _call(node: ast.Call) -> Any:
    cls = _resolve(node.func)
    args = [_literal(arg) for arg in node.args]
    kwargs = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise PipelineSyntaxError(f"'**{_src(kw.value)}' is not allowed: name each argument")
        kwargs[kw.arg] = _literal(kw.value)
    try:
        return cls(*args, **kwargs)
    except Exception as exc:
        raise PipelineSyntaxError(f"'{_src(node)}' failed: {exc}") from None


def _resolve(func: ast.AST) -> type:
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        raise PipelineSyntaxError(
            f"'{_src(func)}' is not allowed: use module.Class(...)")
    parts.append(func.id)
    parts.reverse()
    dotted = ".".join(parts)
    if len(parts) < 2 or any(p.startswith("_") for p in parts) or parts[0] not in ESTIMATOR_MODULES:
        raise PipelineSyntaxError(
            f"'{dotted}' is not allowed: use module.Class(...)")
    try:
        obj: object = importlib.import_module(f"river.{parts[0]}")
    except ImportError:
        raise PipelineSyntaxError(f"River has no module '{parts[0]}'") from None
    for name in parts[1:]:
        parent = obj
        obj = getattr(parent, name, None)
        if obj is None:
            raise PipelineSyntaxError(f"unknown River class '{dotted}'")
        if isinstance(obj, types.ModuleType) and obj.__name__ != f"{parent.__name__}.{name}":
            # only walk down into a module's own sub-modules, never to ones it imported
            raise PipelineSyntaxError(f"'{dotted}' is not allowed: use module.Class(...)")
    if not (inspect.isclass(obj) and issubclass(obj, base.Base)
            and obj.__module__.startswith(f"river.{parts[0]}")):
        raise PipelineSyntaxError(f"'{dotted}' is not a River estimator class")
    return obj


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Call):
        return _call(node)
    if isinstance(node, ast.Constant) and isinstance(
            node.value, int | float | str | bool | type(None)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict) and None not in node.keys:
        try:
            return {_literal(k): _literal(v)
                    for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
        except TypeError as exc:
            raise PipelineSyntaxError(f"argument '{_src(node)}': {exc}") from None
    raise PipelineSyntaxError(f"argument '{_src(node)}' is not allowed: use literals or "
                              "River classes called as module.Class(...)")
