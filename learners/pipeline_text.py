"""Build a River pipeline from its text form, safely: parsed with ``ast``, never ``eval``.

Accepted: calls ``module.Class(...)`` of classes from River's estimator modules
(``optim.losses.Log()`` style sub-modules too), literal arguments (numbers,
strings, booleans, None, lists, tuples, dicts, nested River calls) and ``|``
between steps. Anything else is rejected with one line naming the offending
part, and so is what would hang or exhaust start-up: text beyond
``MAX_PIPELINE_CHARS``, more than ``MAX_STEPS`` steps, nesting deeper than
``MAX_DEPTH``, non-finite numbers (``1e400``), ensembles of more than
``MAX_MODELS`` models, sizes (windows, buffers, sketches) beyond ``MAX_SIZE``
and other integers beyond ``MAX_INT``.

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
>>> build_pipeline("linear_model.LogisticRegression(l2=1e400)")
Traceback (most recent call last):
...
learners.exceptions.PipelineSyntaxError: argument '1e309' is not a finite number
"""

import ast
import importlib
import inspect
import math
import types
from typing import Any

from river import base

from learners.exceptions import PipelineSyntaxError
from learners.set_order import canonical_sets
from schemas.constants import MAX_PIPELINE_CHARS

MAX_STEPS = 64
MAX_DEPTH = 16
#: Ensemble sizes: parameters named like these.
MAX_MODELS = 1_000
_MODEL_COUNTS = frozenset({"n_models", "n_estimators", "n_trees", "n_learners"})
#: Windows, buffers, sketches and other sizes that allocate: parameters whose name has
#: one of these words.
MAX_SIZE = 10_000_000
_SIZE_WORDS = ("window", "size", "width", "depth", "buckets", "bins", "components",
               "neighbors", "n_")
#: Parameters whose cost grows exponentially or combinatorially (a tree of 2**height
#: nodes built up front, polynomial features of a degree).
MAX_HEIGHT = 16
MAX_DEGREE = 5
MAX_INT = 2 ** 63
_MAX_SOURCE = 80

ESTIMATOR_MODULES = frozenset({
    "anomaly", "cluster", "compose", "covariance", "drift", "ensemble", "facto",
    "feature_extraction", "feature_selection", "forest", "imblearn", "linear_model",
    "metrics", "misc", "model_selection", "multiclass", "multioutput", "naive_bayes",
    "neighbors", "neural_net", "optim", "preprocessing", "proba", "rules", "sketch", "stats",
    "time_series", "tree",
})


def build_pipeline(text: str) -> Any:
    """Parse ``text`` and return a fresh River estimator (a Pipeline for ``a | b``).

    Raises:
        PipelineSyntaxError: one line naming what is not allowed.
    """
    if len(text) > MAX_PIPELINE_CHARS:
        raise PipelineSyntaxError(f"pipeline has {len(text)} characters; the limit is "
                                  f"{MAX_PIPELINE_CHARS}")
    try:
        # in parentheses, a pipeline may span lines and be indented, as TOML allows
        tree = ast.parse(f"(\n{text.strip()}\n)", mode="eval")
    except SyntaxError as exc:
        raise PipelineSyntaxError(f"not a valid expression: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise PipelineSyntaxError(f"not a valid expression: {type(exc).__name__}") from None
    steps = _steps(tree.body)
    if len(steps) > MAX_STEPS:
        raise PipelineSyntaxError(f"pipeline has {len(steps)} steps; the limit is {MAX_STEPS}")
    built = _build(steps[0])
    for node in steps[1:]:
        step = _build(node)
        try:
            built = built | step
        except Exception as exc:
            raise PipelineSyntaxError(f"'{_src(node)}' cannot be chained: {exc}") from None
    return canonical_sets(built)  # laid out as a restored copy will be


def pipeline_meaning(text: str) -> str:
    """What a pipeline's text means, however it is written: each step's class path and
    all its parameters (defaults included, nested estimators likewise), as one string.

    >>> a = pipeline_meaning("preprocessing.StandardScaler()|linear_model.LogisticRegression()")
    >>> b = pipeline_meaning('''preprocessing.StandardScaler(with_std=True)
    ...     | linear_model.LogisticRegression(l2=0.0, intercept_lr=0.01)''')
    >>> a == b, a == pipeline_meaning("linear_model.LogisticRegression(l2=0.1)")
    (True, False)
    """
    return repr(_canonical(build_pipeline(text)))


def _canonical(value: Any) -> Any:
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, base.Base):
        steps = getattr(value, "steps", None)
        if isinstance(value, base.Estimator) and isinstance(steps, dict):
            return ["pipeline", [_canonical(step) for step in steps.values()]]
        return [_canonical(type(value)), _canonical(value._get_params())]
    if isinstance(value, dict):
        return sorted((repr(_canonical(k)), _canonical(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return repr(value)


def _steps(node: ast.AST) -> list[ast.AST]:
    """The operands of a ``|`` chain, left to right, without recursion."""
    steps: list[ast.AST] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.BinOp) and isinstance(current.op, ast.BitOr):
            stack.append(current.right)
            stack.append(current.left)
            if len(stack) + len(steps) > MAX_STEPS + 1:
                raise PipelineSyntaxError(f"pipeline has more than {MAX_STEPS} steps")
        else:
            steps.append(current)
    return steps


def _src(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except (RecursionError, ValueError):
        text = type(node).__name__
    return text if len(text) <= _MAX_SOURCE else text[:_MAX_SOURCE - 3] + "..."


def _build(node: ast.AST) -> Any:
    if isinstance(node, ast.Call):
        return _call(node, 0)
    raise PipelineSyntaxError(
        f"'{_src(node)}' is not allowed: steps are River classes called as module.Class(...) "
        "joined by |")


def _call(node: ast.Call, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise PipelineSyntaxError(f"'{_src(node)}' is nested deeper than {MAX_DEPTH}")
    cls = _resolve(node.func)
    args = [_literal(arg, depth + 1) for arg in node.args]
    kwargs = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise PipelineSyntaxError(f"'**{_src(kw.value)}' is not allowed: name each argument")
        kwargs[kw.arg] = _literal(kw.value, depth + 1)
    _check_bounds(cls, node, args, kwargs)
    try:
        return cls(*args, **kwargs)
    except Exception as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise PipelineSyntaxError(f"'{_src(node)}' failed: {first}") from None


def _check_bounds(cls: type, node: ast.Call, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Refuse integer arguments that would make building or running the model hang."""
    try:
        bound = inspect.signature(cls).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError) as exc:
        raise PipelineSyntaxError(f"'{_src(node)}' failed: {exc}") from None
    for name, value in bound.items():
        if name in _MODEL_COUNTS:
            limit = MAX_MODELS
        elif "seed" in name or "random_state" in name:
            limit = MAX_INT
        elif "height" in name:
            limit = MAX_HEIGHT
        elif "degree" in name:
            limit = MAX_DEGREE
        elif any(word in name for word in _SIZE_WORDS):
            limit = MAX_SIZE
        else:
            limit = MAX_INT
        # a tuple or list (ngram_range, hidden_dims, ...) is bounded element by element
        for number in (value if isinstance(value, tuple | list) else (value,)):
            if isinstance(number, bool) or not isinstance(number, int):
                continue
            if abs(number) > limit:
                raise PipelineSyntaxError(f"'{_src(node)}': {name}={number:.3g} is beyond "
                                          f"{limit:,}")


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


def _literal(node: ast.AST, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise PipelineSyntaxError(f"argument '{_src(node)}' is nested deeper than {MAX_DEPTH}")
    if isinstance(node, ast.Call):
        return _call(node, depth)
    if isinstance(node, ast.Constant) and isinstance(
            node.value, int | float | str | bool | type(None)):
        value = node.value
        if isinstance(value, float) and not math.isfinite(value):
            raise PipelineSyntaxError(f"argument '{_src(node)}' is not a finite number")
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise PipelineSyntaxError(f"argument '{value:.3g}' is beyond {MAX_INT:,}")
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand, depth + 1)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.List):
        return [_literal(e, depth + 1) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e, depth + 1) for e in node.elts)
    if isinstance(node, ast.Dict) and None not in node.keys:
        try:
            return {_literal(k, depth + 1): _literal(v, depth + 1)  # type: ignore[arg-type]
                    for k, v in zip(node.keys, node.values, strict=True)}
        except TypeError as exc:
            raise PipelineSyntaxError(f"argument '{_src(node)}': {exc}") from None
    raise PipelineSyntaxError(f"argument '{_src(node)}' is not allowed: use literals or "
                              "River classes called as module.Class(...)")
