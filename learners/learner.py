"""The learner of one (model, partition): test-then-train with a metric and ADWIN.

No single event can break it. Everything checkable is checked before the model
is touched (:class:`EventRefused`: numbers that are not finite float64, a label
of another type than the model's, a class beyond ``max_classes``, a label
longer than ``max_label_chars``, features beyond ``max_features``). Learning
itself is a transaction where a check cannot rule failure out: an event that
brings something the model has not learned before (its first event, a value
kind it never saw, a feature changing kind, a new class, numbers adding up to
more than twice the most it learned, or beyond 1e100) is learned while a deep
copy of the model is kept, and afterwards the model's prediction for it must
still be finite and its state hold no more NaN or infinities than before; on
any failure the copy is put back and :class:`ModelError` raised, so the learner
pickles bit-identically to before. Other events are learned without the copy
(they repeat what the model has already learned); should the model's state turn
non-finite anyway, the next scoring finds it, the model starts afresh and the
step reports it ``unhealthy`` (the caller may restore a checkpoint instead).

A ``None`` prediction (a model that has not learned enough to predict, e.g.
``forest.AMFRegressor``) is "no prediction yet": no error is counted, and
neither the metric nor ADWIN sees it.

With ``spec.challenger`` the learner also holds a :class:`learners.challenger.Challenger`
that learns each labelled event the model has taken; when it is promoted (``Step.promoted``)
it becomes ``model`` from the next event on, and ``Step.generation`` says which model
served each prediction. Its failures are counted (``Step.challenger_failed``), never raised.

>>> from schemas.models_file import ModelSpec
>>> spec = ModelSpec(task="classification",
...                  pipeline="preprocessing.StandardScaler() | linear_model.LogisticRegression()")
>>> learner = Learner.from_spec(spec, cooldown=1000)
>>> step = learner.step({"x": 1.0}, True)
>>> step.prediction, step.scores, step.version, step.learned
(False, {'false': 0.5, 'true': 0.5}, 0, True)
>>> learner.step({"x": 1.0}, True).version
1
>>> learner.step({"x": 1.0}, "yes")
Traceback (most recent call last):
...
learners.exceptions.EventRefused: the model's labels are bool; this label is str
"""

import copy
import io
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from learners import safe_pickle
from learners.challenger import Challenger, Promoted
from learners.drift import DriftSignal, DriftWatcher
from learners.exceptions import EventRefused, ModelError, UnsupportedObject
from learners.feature_drift import FeatureWatch, WatchSignal
from learners.health import non_finite
from learners.metric import make_metric
from learners.pipeline_text import build_pipeline, pipeline_meaning
from learners.set_order import canonical_sets
from schemas.event import finite_number_problem
from schemas.models_file import ModelSpec

#: Events whose numbers add up beyond this are always learned as a transaction
#: (squares overflow float64 at about 1.3e154).
_HUGE = 1e100
_NUMBER, _TEXT, _ANY = 1, 2, 3
_LABEL_TYPES: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}
#: CPython before 3.13 de-optimises an object for good once its ``__dict__`` is read
#: (a deep copy or the health check does): a model learned as a transaction is then
#: swapped for a copy built attribute by attribute (see :func:`_inline_copy`).
_REINLINE = sys.version_info < (3, 13)


def final_step(model: Any) -> Any:
    """The last step of a pipeline (the model itself otherwise)."""
    steps = getattr(model, "steps", None)
    return list(steps.values())[-1] if steps else model


def class_key(label: object) -> str:
    """The JSON key of a class label in ``scores``: ``true``/``false`` for booleans.

    >>> class_key(True), class_key(3), class_key("spam")
    ('true', '3', 'spam')
    """
    if label is True:
        return "true"
    if label is False:
        return "false"
    return str(label)


@dataclass(slots=True)
class Step:
    """What one event did: the prediction made before learning, and what followed.

    ``unhealthy`` says why the model had to start afresh before scoring this event
    (its state was not finite), else None.
    """

    prediction: Any
    scores: dict[str, float] | None
    version: int
    learned: bool
    signal: DriftSignal | None
    reset: bool
    unhealthy: str | None = None
    #: Label-free alerts (feature / prediction distribution), see ``Learner.inputs``.
    watched: list[WatchSignal] | tuple[()] = ()
    #: With a challenger: which model served this prediction (0: the models file's
    #: pipeline; n: the challenger promoted n-th).
    generation: int | None = None
    #: The challenger was promoted after this event (served from the next one on).
    promoted: Promoted | None = None
    #: The challenger raised on this event (it was skipped; the champion was not).
    challenger_failed: bool = False
    #: Classifiers: the raw probabilities, keyed by class (not by ``class_key``); what a
    #: pending prediction keeps for a late label (``learners/feedback.py``).
    proba: dict[Any, float] | None = None


def input_watch(spec: ModelSpec, cooldown: int) -> FeatureWatch | None:
    """The label-free watcher ``spec.drift`` asks for, or None (the default)."""
    d = spec.drift
    if not (d.features or d.prediction):
        return None
    return FeatureWatch(d.features, d.prediction, d.max_features, cooldown, delta=d.delta)


class Learner:
    """A River model with its metric, drift watcher, counters and what it has learned
    about its inputs (feature kinds, label type, classes, largest number).

    Parameters
    ----------
    spec
        The model's entry of the models file.
    model
        A fresh (unfitted) River estimator built from ``spec.pipeline``.
    cooldown
        Observations during which ADWIN's repeated detections are muted after an alert.
    """

    def __init__(self, spec: ModelSpec, model: Any, cooldown: int) -> None:
        self.spec = spec
        self.task = spec.task
        self.model = model
        self.metric = make_metric(spec.metric)
        self.watcher = _watcher(spec, cooldown)
        self.n_learned = 0
        self.n_scored = 0
        self.n_resets = 0
        self.n_unhealthy = 0
        self.last_alert: dict[str, Any] | None = None
        self.inputs = input_watch(spec, cooldown)
        self.challenger = _challenger(spec)
        self._proba_metric = not getattr(self.metric, "requires_labels", True)
        self._binary = spec.task == "classification" and not getattr(
            final_step(model), "_multiclass", True)
        self._inputs_init()

    def _inputs_init(self) -> None:
        #: feature name -> _NUMBER / _TEXT / _ANY (changed kind once, and the model took it)
        self.kinds: dict[str, int] = {}
        self._kinds_learned: set[int] = set()
        self.classes: set[Any] = set()
        self.label_type: type | None = _LABEL_TYPES.get(self.spec.label_type or "")
        #: largest sum of |numbers| of an event learned; events beyond ``_high`` (twice
        #: it) are learned as a transaction
        self._record = 0.0
        self._high = 1.0
        self._probe: dict[str, Any] | None = None

    @property
    def binary(self) -> bool:
        """True for a binary classifier: its labels are true/false (or 0/1)."""
        return self._binary

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle, giving attributes added since the checkpoint was written their defaults."""
        # one by one, not through __dict__: keeps CPython's inline attributes (fast path)
        for name, value in state.items():
            setattr(self, name, value)
        for name, value in (("last_alert", None), ("n_unhealthy", 0), ("inputs", None),
                            ("challenger", None)):
            if name not in state:
                setattr(self, name, value)
        if "_binary" not in state:
            self._binary = self.task == "classification" and not getattr(
                final_step(self.model), "_multiclass", True)
        if "kinds" not in state:
            self._inputs_init()
        if not hasattr(self.watcher, "min_effect"):
            self.watcher = _watcher(self.spec, self.watcher.cooldown)

    def share_strings(self, canonical: Mapping[str, str]) -> None:
        """Hold ``canonical``'s objects wherever the model (and the learner's feature
        kinds) has a string equal to one of its keys.

        For a restored learner: ``canonical`` maps each feature name to the object the
        events' parser hands out for it (pydantic's string cache,
        :func:`schemas.event.parsed_names`). Unpickled, the model's names are new, equal
        strings, and every River look-up by an event's key then compares characters
        instead of identities (+8% instructions per step, callgrind). Same state, same
        predictions; nothing changes when the model cannot be copied safely.

        >>> from schemas.models_file import ModelSpec
        >>> learner = Learner.from_spec(ModelSpec(task="classification",
        ...     pipeline="preprocessing.StandardScaler() | linear_model.LogisticRegression()"),
        ...     cooldown=100)
        >>> _ = learner.step({"amount": 1.0}, True)
        >>> name = "".join(["amo", "unt"])  # equal to the model's, another object
        >>> learner.share_strings({name: name})
        >>> next(iter(learner.model["StandardScaler"].counts)) is name
        True
        """
        self.model = _inline_copy(self.model, canonical)
        self.kinds = {canonical.get(name, name): kind for name, kind in self.kinds.items()}

    @classmethod
    def from_spec(cls, spec: ModelSpec, cooldown: int) -> "Learner":
        """A learner with a fresh model parsed from ``spec.pipeline``."""
        return cls(spec, build_pipeline(spec.pipeline), cooldown)

    def step(self, x: dict[str, Any], y: Any) -> Step:
        """Score ``x``, then (with a label, or always for anomaly models) learn from it.

        The prediction is made before learning (test-then-train).

        Raises:
            EventRefused: the event cannot be taken (``reason`` is the dead letter's
                type); nothing was touched.
            ModelError: scoring or learning failed; the learner is as it was (unless
                ``unhealthy`` says it had to start afresh).
        """
        task = self.task
        learns = y is not None or task == "anomaly"
        news = self._check(x, y) if learns else None
        version = self.n_learned
        try:
            prediction, proba, scores = self._predict(x)
        except Exception as exc:  # scoring touches nothing
            raise ModelError(f"{type(exc).__name__}: {exc}") from exc
        unhealthy = None
        if proba is None:
            finite = prediction is None or type(prediction) is str or math.isfinite(prediction)
        else:
            finite = math.isfinite(sum(proba.values()))
        if not finite and not self.n_learned:
            # an unfitted model (e.g. MinMaxScaler before its first event: 0/0) has no
            # prediction yet, as River's models that return None
            prediction, proba, scores = None, None, None
        elif not finite:
            unhealthy = self._heal(x)
            prediction, proba, scores = self._predict(x)
            if not _finite(prediction, proba):
                raise ModelError("the model's prediction for these features is not finite",
                                 unhealthy)
        if not learns:
            self.n_scored += 1
            step = Step(prediction, scores, version, False, None, False, unhealthy,
                        self._watch_inputs(x, prediction), proba=proba)
        else:
            step = self._learn_and_watch(x, y, news, prediction, proba, scores, version,
                                         unhealthy)
        if self.challenger is not None:
            step.generation = self.challenger.generation  # who served this prediction
            if y is not None:
                self._challenge(x, y, prediction, proba, step)
        return step

    def learn_late(self, x: dict[str, Any], y: Any, prediction: Any,
                   proba: dict[Any, float] | None) -> Step:
        """Learn a late label ``y`` for features ``x`` scored earlier as ``prediction``
        (``proba``: the classifier's probabilities then, else None).

        Prequential evaluation with delay, as River's ``evaluate.progressive_val_score``
        with ``delay``: the metric and ADWIN judge the *stored* prediction against ``y``
        (neither sees a missing prediction), and the model learns ``x`` through the same
        code as :meth:`step` (checks, transaction, NaN guard, ``observe_loss``, reset on
        drift). A challenger learns the label too (its own guess is made now, so it has
        seen the labels joined since the event was scored; the champion is judged on its
        stored prediction). Anomaly models learned when they scored: only their metric
        takes the label (``learned`` is False).

        Raises:
            EventRefused: the label cannot be taken (``reason`` ``invalid_label``).
            ModelError: learning failed; the learner is as it was (see :meth:`step`).

        >>> from schemas.models_file import ModelSpec
        >>> learner = Learner.from_spec(ModelSpec(task="classification",
        ...     pipeline="linear_model.LogisticRegression()"), cooldown=100)
        >>> scored = learner.step({"x": 1.0}, None)
        >>> late = learner.learn_late({"x": 1.0}, True, scored.prediction, scored.proba)
        >>> late.learned, late.version, learner.n_learned, learner.n_scored, scored.proba
        (True, 0, 1, 1, {False: 0.5, True: 0.5})
        """
        version = self.n_learned
        news = self._check(x, y)
        if self.task == "anomaly":
            if prediction is not None:
                self.metric.update(y, prediction)
            return Step(prediction, None, version, False, None, False, proba=proba)
        step = self._learn_and_watch(x, y, news, prediction, proba, None, version, None,
                                     late=True)
        if self.challenger is not None:
            step.generation = self.challenger.generation
            self._challenge(x, y, prediction, proba, step)
        return step

    def check_label(self, y: Any) -> None:
        """Refuse a label this model cannot learn (a late label, before it is joined).

        Raises:
            EventRefused: ``invalid_label`` (type, class limit, length, not finite).
        """
        self._check_label(y, self._high, None)

    def _learn_and_watch(self, x: dict[str, Any], y: Any, news: "_News | None",
                         prediction: Any, proba: dict[Any, float] | None,
                         scores: dict[str, float] | None, version: int,
                         unhealthy: str | None, late: bool = False) -> Step:
        """Learn ``(x, y)``, then judge ``prediction`` (made before) with the metric and
        ADWIN: the learning half of test-then-train, inline or ``late`` (then the event
        was already counted as scored and seen by the label-free watchers)."""
        task = self.task
        if news is None and self.n_learned:  # nothing new: learned as before, no copy
            try:
                if task == "anomaly":
                    self.model.learn_one(x)
                else:
                    self.model.learn_one(x, y)
            except Exception as exc:
                raise self._broken(exc) from exc
        else:
            self._learn(x, y, news)
        self._probe = x
        if late:
            watched: list[WatchSignal] | tuple[()] = ()
        else:
            self.n_scored += 1
            inputs = self.inputs  # _watch_inputs, inline: the hot path
            watched = inputs.update(x, prediction) if inputs is not None else ()
        if prediction is None:
            self.n_learned += 1
            return Step(prediction, scores, version, True, None, False, unhealthy, watched)
        if task == "anomaly":
            if y is not None:
                self.metric.update(y, prediction)
            value = float(prediction)
        elif task == "classification":
            self.metric.update(y, proba if self._proba_metric else prediction)
            value = 0.0 if prediction == y else 1.0
        else:
            value = abs(y - prediction)
            if value == math.inf:  # finite numbers whose difference overflows: no error
                self.n_learned += 1
                return Step(prediction, scores, version, True, None, False, unhealthy,
                            watched)
            self.metric.update(y, prediction)
        signal, reset = self.observe_loss(value)
        return Step(prediction, scores, version, True, signal, reset, unhealthy, watched)

    def _challenge(self, x: dict[str, Any], y: Any, prediction: Any,
                   proba: dict[Any, float] | None, step: Step) -> None:
        """Teach the challenger the event; promote it when :mod:`learners.challenger` says."""
        challenger = self.challenger
        assert challenger is not None
        failed = challenger.n_failed
        champion = proba if (proba is not None and self._proba_metric) else prediction
        drifted = step.signal is not None and step.signal.kind == "worse"
        promoted = challenger.step(x, y, champion, drifted)
        step.challenger_failed = challenger.n_failed > failed
        if promoted is not None:
            self.model = challenger.take()
            self.watcher.reset()  # the error now comes from another model
            self._probe = None
            step.promoted = promoted

    def _predict(self, x: dict[str, Any]) -> tuple[Any, dict[Any, float] | None,
                                                   dict[str, float] | None]:
        if self.task == "classification":
            proba = self.model.predict_proba_one(x)
            if not proba:
                return None, proba, {}
            prediction = max(proba, key=proba.get)
            items = proba.items()
            if len(proba) > self.spec.scores_top_k:
                items = sorted(items, key=lambda kv: -kv[1])[:self.spec.scores_top_k]
            # class_key, inline (a call per class otherwise)
            return prediction, proba, {
                "true" if c is True else "false" if c is False else str(c): p for c, p in items}
        if self.task == "regression":
            return self.model.predict_one(x), None, None
        return self.model.score_one(x), None, None

    def _check(self, x: dict[str, Any], y: Any) -> "_News | None":
        """Refuse what cannot be learned; return what is new in the event (to remember
        once learned, and whether to learn it as a transaction), or None."""
        high = self._high
        if _TEXT not in self._kinds_learned:
            # the hot path, at C speed: numbers only (str raises TypeError, a 400-digit
            # int OverflowError), all known, none NaN, infinite or beyond the record
            try:
                fast = sum(map(abs, x.values())) <= high and x.keys() <= self.kinds.keys()
            except (TypeError, OverflowError):
                fast = False
            if fast:
                if y is None:
                    return None
                kind_of = type(y)
                if self.task == "classification":
                    if kind_of is self.label_type and y in self.classes:
                        return None
                elif self.task == "regression" and (
                        kind_of is float or kind_of is int) and -high <= y <= high:
                    return None
                news = self._check_label(y, high, None)
                if news is not None:
                    news.record = _magnitude(x, y)
                return news
        return self._check_slow(x, y, high)

    def _check_slow(self, x: dict[str, Any], y: Any, high: float) -> "_News | None":
        kinds = self.kinds
        news: _News | None = None
        for name, value in x.items():
            kind_of = type(value)
            if kind_of is float or kind_of is int:
                if not -high <= value <= high:
                    news = self._large(f"feature '{name}'", value, news)
                kind = _NUMBER
            elif kind_of is str:
                kind = _TEXT
            elif kind_of is bool:
                kind = _NUMBER
            else:
                raise EventRefused("invalid_event", f"feature '{name}' is a "
                                   f"{kind_of.__name__}; features are numbers, strings or "
                                   "booleans")
            known = kinds.get(name)
            if known is not kind and known is not _ANY:
                news = news or _News()
                news.features.append((name, kind if known is None else _ANY))
                if known is not None or kind not in self._kinds_learned:
                    news.risky = True  # a kind the model has not learned (here)
        if news is not None and news.features:
            added = sum(1 for name, _ in news.features if name not in kinds)
            if added and len(kinds) + added > self.spec.max_features:
                raise EventRefused("invalid_event", f"the event brings {added} new features; "
                                   f"the model has {len(kinds)} of at most "
                                   f"{self.spec.max_features} (max_features)")
        if y is not None:
            news = self._check_label(y, high, news)
        if news is not None:
            news.record = _magnitude(x, y)
        return news

    @staticmethod
    def _large(what: str, value: float, news: "_News | None") -> "_News":
        problem = finite_number_problem(value)
        if problem is not None:
            raise EventRefused("invalid_event", f"{what}: {problem}")
        news = news or _News()
        news.risky = True
        return news

    def _check_label(self, y: Any, high: float, news: "_News | None") -> "_News | None":
        kind_of = type(y)
        if self.task == "regression":
            if kind_of is not float and kind_of is not int:
                raise EventRefused("invalid_label", "a regressor's label must be a number, "
                                   f"not {kind_of.__name__}")
            if not -high <= y <= high:
                news = self._large("label", y, news)
            return news
        if self.task == "anomaly":
            if kind_of is not bool and not (kind_of is int and y in (0, 1)):
                raise EventRefused("invalid_label", "an anomaly model's label says whether "
                                   f"the event is an anomaly: true/false or 0/1, not {y!r:.40}")
            return news
        if kind_of is not self.label_type and self.label_type is not None:
            raise EventRefused("invalid_label", f"the model's labels are "
                               f"{self.label_type.__name__}; this label is {kind_of.__name__}")
        if y not in self.classes:
            if kind_of is str and len(y) > self.spec.max_label_chars:
                raise EventRefused("invalid_label", f"label of {len(y)} characters; the "
                                   f"limit is {self.spec.max_label_chars} (max_label_chars)")
            problem = finite_number_problem(y)
            if problem is not None:
                raise EventRefused("invalid_label", f"label: {problem}")
            if self._binary and not (kind_of is bool or (kind_of is int and y in (0, 1))):
                raise EventRefused("invalid_label", "a binary classifier's label must be "
                                   f"true/false (or 0/1), not {y!r:.40}")
            if len(self.classes) >= self.spec.max_classes:
                raise EventRefused("invalid_label", f"a new class beyond the model's "
                                   f"{self.spec.max_classes} (max_classes)")
            news = news or _News()
            news.new_class = True
            news.risky = True
        return news

    def _learn(self, x: dict[str, Any], y: Any, news: "_News | None") -> None:
        """Learn ``(x, y)``; as a transaction when ``news`` is risky (or nothing was
        learned yet)."""
        if self.n_learned and (news is None or not news.risky):
            self._learn_plain(x, y)
        else:
            # a deep copy, not a pickle: it shares the strings, numbers and classes the
            # original shares with the rest of the learner (and River's class names), so
            # putting it back is bit-identical
            snapshot = copy.deepcopy(self.model)
            broken = non_finite(self.model)
            try:
                self._learn_one(x, y)
                prediction, proba, _ = self._predict(x)
                if not _finite(prediction, proba) or non_finite(self.model) > broken:
                    raise ModelError("learning this event would make the model's state "
                                     "non-finite; refused")
            except Exception as exc:
                self.model = snapshot
                if isinstance(exc, ModelError):
                    raise
                raise ModelError(f"{type(exc).__name__}: {exc}") from exc
            if _REINLINE:
                self.model = _inline_copy(self.model)
        if news is not None:
            self._remember(y, news)
        if self.label_type is None and self.task == "classification":
            self.label_type = type(y)

    def _learn_plain(self, x: dict[str, Any], y: Any) -> None:
        """Learn an event like those the model has learned, without a copy."""
        try:
            self._learn_one(x, y)
        except Exception as exc:
            raise self._broken(exc) from exc

    def _broken(self, exc: Exception) -> ModelError:
        """Learning without a copy raised ``exc``: a state we cannot put back, so the model
        starts afresh; the error to raise (``unhealthy`` says why)."""
        reason = f"learning failed half-way: {type(exc).__name__}: {exc}"
        self._restart()
        return ModelError(f"{type(exc).__name__}: {exc}", reason)

    def _learn_one(self, x: dict[str, Any], y: Any) -> None:
        if self.task == "anomaly":
            self.model.learn_one(x)
        else:
            self.model.learn_one(x, y)

    def _remember(self, y: Any, news: "_News") -> None:
        self._record = max(self._record, news.record)
        self._high = min(max(2.0 * self._record, 1.0), _HUGE)
        for name, kind in news.features:
            self.kinds[name] = kind
            self._kinds_learned.add(kind)
        if news.new_class:
            self.classes.add(y)

    def _heal(self, x: dict[str, Any]) -> str:
        """The prediction for ``x`` is not finite: is the model's state, or only ``x``?"""
        probe = self._probe
        if probe is not None and probe is not x:
            prediction, proba, _ = self._predict(probe)
            if _finite(prediction, proba):
                raise ModelError("the model's prediction for these features is not finite")
        self._restart()
        return "the model's predictions are not finite"

    def _restart(self) -> None:
        """The model's state is broken: start it afresh (by policy; a caller holding a
        good checkpoint may restore that instead, see ``Step.unhealthy``)."""
        self.model = self.model.clone()
        self.metric = make_metric(self.spec.metric)
        self.watcher.reset()
        self.n_unhealthy += 1
        self._inputs_init()

    def _watch_inputs(self, x: dict[str, Any], prediction: Any) -> "list[WatchSignal] | tuple[()]":
        """Feed the label-free watchers (if configured) with an event that was taken."""
        return self.inputs.update(x, prediction) if self.inputs is not None else ()

    def observe_loss(self, value: float) -> tuple[DriftSignal | None, bool]:
        """Count one learned event and give its loss (or score) to the drift watcher;
        reset the model if an alert says so (``on_drift = "reset"``).

        Returns:
            The watcher's signal (or None) and whether the model was reset.
        """
        self.n_learned += 1
        signal = self.watcher.update(value)
        reset = (signal is not None and signal.kind == "worse"
                 and self.spec.drift.on_drift == "reset")
        if reset:
            self.reset()
        return signal, reset

    def adopt(self, spec: ModelSpec, cooldown: int) -> bool:
        """Take the models file's current settings for this (restored) learner.

        Returns False when the model changed (task, or what the pipeline means: its
        classes and all their parameters, defaults included — not how it is written)
        or a declared ``label_type`` contradicts the labels learned: the state then
        belongs to another model and must not be used. Drift settings, limits and the
        metric follow the file (a new metric starts empty).
        """
        if spec.task != self.spec.task:
            return False
        if spec.pipeline != self.spec.pipeline and (
                pipeline_meaning(spec.pipeline) != pipeline_meaning(self.spec.pipeline)):
            return False
        declared = _LABEL_TYPES.get(spec.label_type or "")
        if declared is not None and self.label_type not in (None, declared):
            return False
        if spec.metric != self.spec.metric:
            self.metric = make_metric(spec.metric)
            self._proba_metric = not getattr(self.metric, "requires_labels", True)
        self.watcher.retune(spec.drift.delta, cooldown, spec.drift.min_effect)
        new, old = spec.drift, self.spec.drift
        if self.inputs is None or (new.features, new.prediction, new.max_features) != (
                old.features, old.prediction, old.max_features):
            self.inputs = input_watch(spec, cooldown)
        else:
            self.inputs.cooldown = cooldown
        if spec.challenger is None or self.challenger is None:
            self.challenger = _challenger(spec)
        else:
            self.challenger.retune(spec.challenger, spec.metric)
        self.spec = spec
        if declared is not None:
            self.label_type = declared
        return True

    def reset(self) -> None:
        """Start the model, metric and ADWIN window afresh (``on_drift = "reset"``)."""
        self.model = self.model.clone()
        self.metric = make_metric(self.spec.metric)
        self.watcher.reset()
        self.n_resets += 1


class _News:
    """What an event brings that the learner has not seen: features (name, kind), its
    largest number beyond the record, a new class; ``risky``: learn as a transaction."""

    __slots__ = ("features", "new_class", "record", "risky")

    def __init__(self) -> None:
        self.features: list[tuple[str, int]] = []
        self.record = 0.0
        self.new_class = False
        self.risky = False


def _magnitude(x: dict[str, Any], y: Any) -> float:
    """The sum of the absolute numbers of an event's features (or its label if larger)."""
    total = math.fsum(abs(float(v)) for v in x.values() if type(v) in (int, float))
    return max(total, abs(float(y)) if type(y) in (int, float) else 0.0)


def _challenger(spec: ModelSpec) -> Challenger | None:
    c = spec.challenger
    return None if c is None else Challenger(c, spec.task, spec.metric)


def _inline_copy(model: Any, canonical: Mapping[str, str] | None = None) -> Any:
    """``model`` rebuilt through :mod:`learners.safe_pickle`, whose objects keep CPython's
    inline attributes (same state, same predictions); ``model`` itself when it cannot be
    pickled safely. With ``canonical``, a string equal to one of its keys is replaced by
    that key's object (see :meth:`Learner.share_strings`).

    The copy shares the original's strings: its dictionaries keep the very key objects the
    events' features hand in (pydantic's string cache), so River's look-ups match them by
    identity instead of comparing characters (16k instructions per event, callgrind).

    >>> from river import preprocessing
    >>> scaler = preprocessing.StandardScaler()
    >>> scaler.learn_one({"amount": 1.0})
    >>> [k for k in _inline_copy(scaler).counts][0] is [k for k in scaler.counts][0]
    True
    """
    out, strings = io.BytesIO(), _Strings()
    # Any failure (a refused object, a ValueError from a __reduce__, a RecursionError from
    # a deep structure) leaves the model as it is: the copy is an optimisation, the model
    # already learned the event.
    try:
        _SharedStringPickler(out, strings).dump(model)
        unpickler = _SharedStringUnpickler(io.BytesIO(out.getvalue()), buffers=())
        unpickler.strings = (strings.objects if canonical is None else
                             [canonical.get(s, s) for s in strings.objects])
        return canonical_sets(unpickler.load())
    except Exception:
        return model


class _Strings:
    """The strings a :class:`_SharedStringPickler` wrote by reference, by index."""

    __slots__ = ("index", "objects")

    def __init__(self) -> None:
        self.objects: list[str] = []
        self.index: dict[int, int] = {}


class _SharedStringPickler(safe_pickle.SafePickler):
    """:class:`safe_pickle.SafePickler` writing each string as a reference into ``strings``
    (an in-memory copy only: such a pickle is never stored)."""

    def __init__(self, file: io.BytesIO, strings: _Strings) -> None:
        super().__init__(file, protocol=safe_pickle.PROTOCOL)
        self.strings = strings

    def persistent_id(self, obj: Any) -> int | None:
        if type(obj) is not str:
            return None
        strings = self.strings
        found = strings.index.get(id(obj))
        if found is None:
            found = strings.index[id(obj)] = len(strings.objects)
            strings.objects.append(obj)
        return found


class _SharedStringUnpickler(safe_pickle.RestrictedUnpickler):
    """Reads a :class:`_SharedStringPickler`'s pickle: the allow-list, plus references to
    the strings of ``strings`` (nothing else)."""

    strings: list[str] = []

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is not int or not 0 <= pid < len(self.strings):
            raise UnsupportedObject("a reference to a string that was not written")
        return self.strings[pid]


def _watcher(spec: ModelSpec, cooldown: int) -> DriftWatcher:
    return DriftWatcher(spec.drift.delta, cooldown, continuous=spec.task != "classification",
                        min_effect=spec.drift.min_effect)


def _finite(prediction: Any, proba: dict[Any, float] | None) -> bool:
    """False when a prediction (a number) or a class probability is NaN or infinite."""
    if proba is not None:
        return math.isfinite(sum(proba.values())) if proba else True
    if prediction is None or type(prediction) is str:
        return True
    return math.isfinite(prediction)
