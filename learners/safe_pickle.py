"""Pickling learners so that unpickling can only build data and known River objects.

A checkpoint's payload is a pickle, and unpickling runs whatever callables the pickle
names. :func:`loads` resolves a name only if the exact ``(module, qualified name)`` pair is
in :data:`ALLOWED` (no dotted names, so no attribute walking from an allowed module to
``pickle.loads`` or ``os.system``): classes, and the handful of reconstructors defined
here. Everything else is refused with an :class:`~learners.exceptions.UnsupportedObject`.

River keeps a few objects whose default pickles would need dangerous callables: bound
methods (``builtins.getattr``), ``functools.partial``, numpy arrays, scalars and dtypes
(which could build object arrays) and ``numpy.random.RandomState`` (numpy's private
constructors take a callable). :class:`SafePickler` writes those through the
reconstructors below instead, each of which accepts only what an explicit table names.

>>> from river import linear_model
>>> model = linear_model.PAClassifier(mode=1)
>>> model.learn_one({"x": 1.0}, True)
>>> copy = loads(dumps(model))
>>> copy.calc_tau.__func__ is linear_model.PAClassifier._calc_tau_1
True
>>> loads(b"\\x80\\x04cbuiltins\\neval\\n.")
Traceback (most recent call last):
...
learners.exceptions.UnsupportedObject: checkpoint refers to builtins.eval, which is not allowed
"""

import copy
import copyreg
import functools
import io
import operator
import pickle
import pickletools
import sys
import types
from typing import Any

import numpy as np

from learners import safe_pickle_names
from learners.exceptions import UnsupportedObject
from learners.set_order import canonical_sets

PROTOCOL = 5
_MODULE = __name__

# Plain functions River keeps as attributes (text processing steps, a staticmethod read
# through ``self``) or wraps in a partial; none of them calls anything it is given.
FUNCTIONS: dict[tuple[str, str], Any] = {}


def _register_functions() -> None:
    from river._river_rust import vectordict
    from river.feature_extraction import vectorize
    from river.forest import online_extra_trees
    from river.metrics import mutual_info
    from river.naive_bayes import gaussian
    from river.tree.splitter import ebst_splitter, nominal_splitter_reg

    trees = online_extra_trees.ExtraTrees

    for func in (ebst_splitter.EBSTNode._update_estimator_univariate,
                 ebst_splitter.EBSTNode._update_estimator_multivariate,
                 nominal_splitter_reg.NominalSplitterReg._update_estimator_univariate,
                 nominal_splitter_reg.NominalSplitterReg._update_estimator_multivariate,
                 vectorize.strip_accents_unicode, vectorize.tokenize_using_regex_pattern,
                 vectorize.remove_stop_words, vectorize.find_all_ngrams, vectorize.find_ngrams,
                 trees._detection_mode_all, trees._detection_mode_drop,
                 trees._detection_mode_off, gaussian.GaussianNB._make_gaussian,
                 vectordict.euclidean_distance_tuple,
                 mutual_info._average_arithmetic, mutual_info._average_geometric,
                 copy.deepcopy):
        FUNCTIONS[(func.__module__, func.__qualname__)] = func
    FUNCTIONS[("builtins", "str.lower")] = str.lower


def _numeric_ones(shape: int) -> np.ndarray[Any, Any]:
    """``numpy.ones(shape)`` (float64 only); restores River's ``partial(np.ones, n)``."""
    if type(shape) is not int or not 0 <= shape <= 1_000_000:
        raise UnsupportedObject("checkpoint asks numpy.ones for a shape River never uses")
    return np.ones(shape)


#: Most numbers a checked numpy constructor or a ``range`` may hold (River's own arrays are
#: far smaller; a pickle must not turn a few bytes into a huge allocation or loop).
MAX_ELEMENTS = 10_000_000


def _plain_numbers(values: Any, depth: int = 0) -> int:
    """How many numbers ``values`` holds, refusing anything but (nested) lists and tuples of
    plain ``int``/``float``/``bool``: numpy must never see an object of the pickle's making
    (``__array_interface__`` and friends read raw memory)."""
    kind = type(values)
    if kind is int or kind is float or kind is bool:
        return 1
    if (kind is list or kind is tuple) and depth < 32:
        total = 0
        for item in values:
            total += _plain_numbers(item, depth + 1)
            if total > MAX_ELEMENTS:
                break
        return total
    raise UnsupportedObject("checkpoint asks numpy.array for something other than numbers")


def _numeric_array(values: Any) -> np.ndarray[Any, Any]:
    """``numpy.array(values)`` of plain (nested) lists of numbers only; restores River's
    ``partial(np.array, [...])``."""
    if _plain_numbers(values) > MAX_ELEMENTS:
        raise UnsupportedObject("checkpoint asks numpy.array for too many numbers")
    out = np.array(values)
    if out.dtype.kind not in NUMERIC_KINDS:
        raise UnsupportedObject(f"checkpoint builds a numpy array of {out.dtype}")
    return out


_register_functions()
_FUNCTION_IDS = {id(f): key for key, f in FUNCTIONS.items()}
# numpy's own constructors are written under their names but come back as the checked
# versions above (same results for the numbers River gives them).
for _key, _original, _safe in ((("numpy", "ones"), np.ones, _numeric_ones),
                               (("numpy", "array"), np.array, _numeric_array)):
    FUNCTIONS[_key] = _safe
    _FUNCTION_IDS[id(_original)] = _FUNCTION_IDS[id(_safe)] = _key

# (class, method name) of the bound methods River keeps as attributes.
BOUND_METHODS: frozenset[tuple[str, str]] = frozenset({
    ("river.linear_model.pa.BasePA", "_calc_tau_0"),
    ("river.linear_model.pa.BasePA", "_calc_tau_1"),
    ("river.linear_model.pa.BasePA", "_calc_tau_2"),
    ("river.preprocessing.scale_target.TargetStandardScaler", "_scale"),
    ("river.preprocessing.scale_target.TargetStandardScaler", "_unscale"),
    ("river.preprocessing.scale_target.TargetMinMaxScaler", "_scale"),
    ("river.preprocessing.scale_target.TargetMinMaxScaler", "_unscale"),
    ("river.ensemble.bagging.LeveragingBaggingClassifier", "_leveraging_bag"),
    ("river.ensemble.bagging.LeveragingBaggingClassifier", "_leveraging_bag_me"),
    ("river.ensemble.bagging.LeveragingBaggingClassifier", "_leveraging_bag_half"),
    ("river.ensemble.bagging.LeveragingBaggingClassifier", "_leveraging_bag_wt"),
    ("river.ensemble.bagging.LeveragingBaggingClassifier", "_leveraging_subag"),
    ("river.tree.splitter.qo_splitter.Slot", "_update_estimator_univariate"),
    ("river.tree.splitter.qo_splitter.Slot", "_update_estimator_multivariate"),
    ("river.feature_extraction.kernel_approx.RBFSampler", "_random_weights"),
    ("river.preprocessing.random_projection.GaussianRandomProjector", "_rand_gauss"),
    ("river.preprocessing.random_projection.SparseRandomProjector",
     "_rand_weights_for_feature"),
    ("river.multiclass.occ.OutputCodeClassifier", "_next_code"),
})

# What ``functools.partial`` may wrap besides a :data:`FUNCTIONS` entry or an allowed class
# (no more than the pickle could call itself): an instance of these initializers (whose
# ``__call__`` draws random weights).
PARTIAL_CLASSES: frozenset[str] = frozenset({
    "river.optim.initializers.Constant", "river.optim.initializers.Normal",
    "river.optim.initializers.Zeros",
})
# numpy kinds an array, scalar or dtype may have: bool, signed, unsigned, float, complex.
NUMERIC_KINDS = frozenset("biufc")


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def one_line(text: str) -> str:
    """``text`` (read from a pickle, or an error about one) as one printable line of at most
    200 characters.

    >>> print(one_line("a" + chr(10) + "b"))
    a\\nb
    """
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 200 else text[:197] + "..."


def _shown(*parts: object) -> str:
    return one_line(".".join(str(p) for p in parts))


# -- reconstructors: the only functions :data:`ALLOWED` names --------------------------------
def _dtype(spec: str) -> np.dtype[Any]:
    dtype = np.dtype(spec)
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
        raise UnsupportedObject(f"checkpoint holds a numpy dtype {spec!r}, which is not allowed")
    return dtype


def _array(spec: str, shape: tuple[int, ...], data: bytes,
           order: str = "C") -> np.ndarray[Any, Any]:
    if not (isinstance(shape, tuple) and all(type(n) is int for n in shape)
            and isinstance(data, bytes) and order in ("C", "F")):
        raise UnsupportedObject("checkpoint holds a malformed numpy array")
    # Same memory order as the original: BLAS may round differently on another layout.
    return np.frombuffer(data, dtype=_dtype(spec)).reshape(shape, order=order).copy(order=order)


def _scalar(spec: str, data: bytes) -> np.generic:
    return _array(spec, (), data)[()]  # type: ignore[no-any-return]


def _random_state(state: tuple[Any, ...]) -> np.random.RandomState:
    if not (isinstance(state, tuple) and len(state) == 5 and state[0] == "MT19937"
            and isinstance(state[1], np.ndarray)):
        raise UnsupportedObject("checkpoint holds a malformed numpy RandomState")
    rng = np.random.RandomState()
    rng.set_state(state)
    return rng


def _function(module: str, qualname: str) -> Any:
    try:
        return FUNCTIONS[(module, qualname)]
    except (KeyError, TypeError):
        raise UnsupportedObject(
            f"checkpoint refers to function {_shown(module, qualname)}, which is not allowed"
        ) from None


def _bound_method(owner: Any, name: str) -> Any:
    cls = owner if isinstance(owner, type) else type(owner)
    for klass in cls.__mro__:
        if (_qualified(klass), name) in BOUND_METHODS and name in vars(klass):
            # Read the class's own descriptor, never the instance's attributes.
            return vars(klass)[name].__get__(None if owner is cls else owner, cls)
    raise UnsupportedObject(
        f"checkpoint refers to method {_shown(_qualified(cls), name)}, which is not allowed")


def _partial(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> functools.partial[Any]:
    allowed = (id(func) in _FUNCTION_IDS
               or (isinstance(func, type)
                   and (func.__module__, func.__qualname__) in safe_pickle_names.CLASSES)
               or _qualified(type(func)) in PARTIAL_CLASSES)
    if not allowed:
        raise UnsupportedObject(f"checkpoint wraps a {_qualified(type(func))} in a partial, "
                                "which is not allowed")
    if not (isinstance(args, tuple) and isinstance(kwargs, dict)
            and all(isinstance(k, str) for k in kwargs)):
        raise UnsupportedObject("checkpoint holds a malformed partial")
    return functools.partial(func, *args, **kwargs)


def _itemgetter(key: str) -> operator.itemgetter:
    if not isinstance(key, str):
        raise UnsupportedObject("checkpoint holds an item getter of a non-string key")
    return operator.itemgetter(key)


def _random_trees_embedding(state: dict[str, Any]) -> Any:
    """River's ``RandomTreesEmbedding`` keys its leaves by ``id()``, which a copy does not
    keep: rebuild that index (same leaf order) instead of restoring stale ids."""
    from river.feature_extraction import RandomTreesEmbedding

    if not (isinstance(state, dict) and all(isinstance(k, str) for k in state)
            and isinstance(state.get("trees"), list)):
        raise UnsupportedObject("checkpoint holds a malformed RandomTreesEmbedding")
    obj = RandomTreesEmbedding.__new__(RandomTreesEmbedding)
    obj.__dict__.update(state)
    obj._leaf_indices = [{id(leaf): i for i, leaf in enumerate(tree.iter_leaves())}
                         for tree in obj.trees]
    return obj


# CPython keeps a plain object's attributes inline, where specialised bytecode reads them
# directly; pickle's default BUILD fills a restored object through its ``__dict__``, which
# materialises that dict and, on 3.11 and 3.12, loses the fast path for the object's whole
# life (reading an attribute then costs a dict lookup). Objects of plain classes are
# therefore written with :func:`_set_state` as their state setter, which sets the same
# attributes one by one, as ``__init__`` did.
_MANAGED_DICT = 1 << 4  # Py_TPFLAGS_MANAGED_DICT (3.11+): the instance has inline values
_PLAIN: dict[type, frozenset[str] | None] = {}
#: 3.13 keeps inline values when a ``__dict__`` is materialised: BUILD costs nothing there,
#: so pickles are written as before (``_set_state`` is still read, from 3.11/3.12 writers).
_WRITE_SET_STATE = sys.version_info < (3, 13)


def _plain(cls: type) -> frozenset[str] | None:
    """For a class whose instances pickle as ``(cls.__new__(cls), state dict)`` and take
    ``setattr`` like a dict write (allowed, no custom pickling, ``__setattr__`` or
    ``__slots__``): the names its data descriptors own (a state key among them is written
    into ``__dict__``, as BUILD does); else None."""
    try:
        return _PLAIN[cls]
    except KeyError:
        pass
    plain = (cls.__flags__ & _MANAGED_DICT
             and (cls.__module__, cls.__qualname__) in safe_pickle_names.CLASSES
             and cls.__reduce_ex__ is object.__reduce_ex__
             and cls.__reduce__ is object.__reduce__
             and cls.__getstate__ is object.__getstate__  # type: ignore[attr-defined]
             and cls.__setattr__ is object.__setattr__
             and not any(hasattr(cls, name) for name in (
                 "__setstate__", "__getnewargs_ex__", "__getnewargs__")))
    owned = frozenset(name for klass in cls.__mro__ for name, value in vars(klass).items()
                      if hasattr(type(value), "__set__")) if plain else None
    _PLAIN[cls] = owned
    return owned


def _set_state(obj: Any, state: dict[str, Any]) -> None:
    """Set an allowed plain object's attributes from ``state`` (what BUILD would write into
    its ``__dict__``), one by one, so that it keeps CPython's inline attributes."""
    owned = _plain(type(obj))
    if owned is None or type(state) is not dict:
        raise UnsupportedObject(f"checkpoint sets the state of a {_qualified(type(obj))}, "
                                "which is not allowed")
    if not all(type(k) is str for k in state):
        raise UnsupportedObject("checkpoint holds a malformed object state")
    if owned.isdisjoint(state):
        for name, value in state.items():
            setattr(obj, name, value)
    else:
        obj.__dict__.update(state)


class LegacyPartial(functools.partial):  # type: ignore[type-arg]
    """``functools.partial`` as format-1 checkpoints (plain pickle) wrote it, e.g. in River's
    confusion matrix: read only there, and only for what :func:`_partial` accepts (both at
    construction and when the pickle sets its state)."""

    def __new__(cls, func: Any, /, *args: Any, **kwargs: Any) -> "LegacyPartial":
        _partial(func, args, kwargs)
        return super().__new__(cls, func, *args, **kwargs)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        if not (isinstance(state, tuple) and len(state) == 4):
            raise UnsupportedObject("checkpoint holds a malformed partial")
        func, args, kwargs, extra = state
        _partial(func, args, kwargs or {})
        if extra:
            raise UnsupportedObject("checkpoint holds a partial with attributes")
        super().__setstate__((func, args, kwargs, None))


def _legacy_random_trees_embedding() -> type:
    from river.feature_extraction import RandomTreesEmbedding

    class LegacyRandomTreesEmbedding(RandomTreesEmbedding):  # type: ignore[misc]
        """Format 1 wrote ``RandomTreesEmbedding`` with its stale ``id()`` index; rebuild it."""

        def __setstate__(self, state: dict[str, Any]) -> None:
            rebuilt = _random_trees_embedding(state)
            self.__dict__.update(vars(rebuilt))

    return LegacyRandomTreesEmbedding


# Names only a format-1 checkpoint (written by plain pickle) may use, and what they mean.
LEGACY: dict[tuple[str, str], Any] = {
    ("functools", "partial"): LegacyPartial,
    ("river.feature_extraction.kernel_approx", "RandomTreesEmbedding"):
        _legacy_random_trees_embedding(),
}


RECONSTRUCTORS = {f.__name__: f for f in (_dtype, _array, _scalar, _random_state, _function,
                                          _bound_method, _partial, _itemgetter,
                                          _random_trees_embedding, _set_state)}
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    safe_pickle_names.CLASSES | {(_MODULE, name) for name in RECONSTRUCTORS})


# -- writing ---------------------------------------------------------------------------------
def _partial_reduce(obj: functools.partial[Any]) -> tuple[Any, ...]:
    func = obj.func
    if not (id(func) in _FUNCTION_IDS or isinstance(func, type)
            or _qualified(type(func)) in PARTIAL_CLASSES):
        raise UnsupportedObject(f"cannot checkpoint a partial of {func!r}")
    return (_partial, (func, obj.args, obj.keywords))


def _itemgetter_reduce(obj: operator.itemgetter) -> tuple[Any, ...]:
    _, keys = obj.__reduce__()
    if len(keys) != 1 or not isinstance(keys[0], str):
        raise UnsupportedObject(f"cannot checkpoint {obj!r}")
    return (_itemgetter, keys)


class SafePickler(pickle.Pickler):
    """A pickler that writes River's callables and numpy objects through the reconstructors
    above, so their pickles need nothing outside :data:`ALLOWED`."""

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is np.ndarray:
            if obj.dtype.kind not in NUMERIC_KINDS:
                raise UnsupportedObject(f"cannot checkpoint a numpy array of {obj.dtype}")
            order = "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous else "C"
            return (_array, (obj.dtype.str, obj.shape, obj.tobytes(order=order), order))
        if isinstance(obj, np.generic):
            return (_scalar, (obj.dtype.str, obj.tobytes()))
        if isinstance(obj, np.dtype):
            return (_dtype, (obj.str,))
        if kind is types.MethodType:
            return (_bound_method, (obj.__self__, obj.__func__.__name__))
        if isinstance(obj, functools.partial):
            return _partial_reduce(obj)
        if id(obj) in _FUNCTION_IDS:
            return (_function, _FUNCTION_IDS[id(obj)])
        if kind is operator.itemgetter:
            return _itemgetter_reduce(obj)
        if any(_qualified(k) == "river.feature_extraction.kernel_approx.RandomTreesEmbedding"
               for k in kind.__mro__):
            state = {k: v for k, v in vars(obj).items() if k != "_leaf_indices"}
            return (_random_trees_embedding, (state,))
        if kind is np.random.RandomState:
            return (_random_state, (obj.get_state(legacy=True),))
        if _WRITE_SET_STATE and _plain(kind) is not None:
            reduced = obj.__reduce_ex__(PROTOCOL)
            if (len(reduced) == 5 and reduced[0] is copyreg.__newobj__
                    and reduced[1] == (kind,) and type(reduced[2]) is dict
                    and reduced[3] is None and reduced[4] is None):
                return (*reduced, _set_state)
        return NotImplemented


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` (protocol 5) so that :func:`loads` can read it back.

    Raises:
        UnsupportedObject: ``obj`` holds something that cannot be pickled (safely).
    """
    out = io.BytesIO()
    try:
        SafePickler(out, protocol=PROTOCOL).dump(obj)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise UnsupportedObject(f"cannot checkpoint this model: {exc}") from None
    return out.getvalue()


# -- reading ---------------------------------------------------------------------------------
class RestrictedUnpickler(pickle.Unpickler):
    """Resolves exactly the ``(module, qualified name)`` pairs of :data:`ALLOWED` (and, for a
    format-1 checkpoint, of :data:`LEGACY`)."""

    legacy = False

    def find_class(self, module: str, name: str) -> Any:
        if self.legacy and (module, name) in LEGACY:
            return LEGACY[(module, name)]
        if (module, name) not in ALLOWED:
            raise UnsupportedObject(
                f"checkpoint refers to {_shown(module, name)}, which is not allowed")
        if module == _MODULE:
            return RECONSTRUCTORS[name]
        if (module, name) == ("builtins", "range"):
            return _bounded_range
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsupportedObject("checkpoint holds a persistent reference, which is not allowed")


def _bounded_range(*args: int) -> range:
    """``range(*args)`` of at most :data:`MAX_ELEMENTS` numbers: a pickle may not hand
    ``deque``/``set``/``tuple`` a range of 10**15 (a hang or an exhausted memory)."""
    if not all(type(a) is int for a in args):
        raise UnsupportedObject("checkpoint builds a range of something other than integers")
    out = range(*args)
    if len(out) > MAX_ELEMENTS:
        raise UnsupportedObject(f"checkpoint builds a range of {len(out):,} numbers")
    return out


def loads(data: bytes, legacy: bool = False) -> Any:
    """Unpickle ``data`` allowing only :data:`ALLOWED` names (out-of-band buffers refused);
    ``legacy``: a format-1 payload, which may also use :data:`LEGACY`.

    Raises:
        UnsupportedObject: the pickle names anything else, or a reconstructor refused it.
    """
    unpickler = RestrictedUnpickler(io.BytesIO(data), buffers=())
    unpickler.legacy = legacy
    # pickle re-inserts a set's elements in iteration order, which can change that order
    return canonical_sets(unpickler.load())


def referenced_globals(data: bytes) -> set[tuple[str, str]]:
    """Every ``(module, name)`` a pickle looks up, read with :mod:`pickletools` (nothing runs).

    >>> import collections
    >>> sorted(referenced_globals(dumps({"a": collections.Counter()})))
    [('collections', 'Counter')]
    """
    found: set[tuple[str, str]] = set()
    memo: dict[int, Any] = {}
    recent: list[Any] = []  # values of the last pushes (strings matter, for STACK_GLOBAL)
    for op, arg, _ in pickletools.genops(data):
        if op.name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = recent[-1] if recent else None
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            recent.append(memo.get(int(arg)))
        elif op.name == "GLOBAL":
            module, name = str(arg).split(" ", 1)
            found.add((module, name))
            recent.append(None)
        elif op.name == "STACK_GLOBAL":
            found.add((str(recent[-2]), str(recent[-1])))
            recent.append(None)
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            recent.append(arg)
        elif op.stack_after:
            recent.append(None)
        del recent[:-4]
    return found
