"""The learner of one (model, partition): test-then-train with a metric and ADWIN.

>>> from schemas.models_file import ModelSpec
>>> spec = ModelSpec(task="classification",
...                  pipeline="preprocessing.StandardScaler() | linear_model.LogisticRegression()")
>>> learner = Learner.from_spec(spec, cooldown=1000)
>>> step = learner.step({"x": 1.0}, True)
>>> step.prediction, step.scores, step.version, step.learned
(False, {'false': 0.5, 'true': 0.5}, 0, True)
>>> learner.step({"x": 1.0}, True).version
1
"""

from dataclasses import dataclass
from typing import Any

from learners.drift import DriftSignal, DriftWatcher
from learners.feature_drift import FeatureWatch, WatchSignal
from learners.metric import make_metric
from learners.pipeline_text import build_pipeline
from schemas.models_file import ModelSpec


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
    """What one event did: the prediction made before learning, and what followed."""

    prediction: Any
    scores: dict[str, float] | None
    version: int
    learned: bool
    signal: DriftSignal | None
    reset: bool
    #: Label-free alerts (feature / prediction distribution), see ``Learner.inputs``.
    watched: list[WatchSignal] | tuple[()] = ()


def input_watch(spec: ModelSpec, cooldown: int) -> FeatureWatch | None:
    """The label-free watcher ``spec.drift`` asks for, or None (the default)."""
    d = spec.drift
    if not (d.features or d.prediction):
        return None
    return FeatureWatch(d.features, d.prediction, d.max_features, cooldown, delta=d.delta)


class Learner:
    """A River model with its metric, drift watcher and counters.

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
        self.watcher = DriftWatcher(spec.drift.delta, cooldown)
        self.n_learned = 0
        self.n_scored = 0
        self.n_resets = 0
        self.last_alert: dict[str, Any] | None = None
        self.inputs = input_watch(spec, cooldown)
        self._proba_metric = not getattr(self.metric, "requires_labels", True)
        self._binary = spec.task == "classification" and not getattr(
            final_step(model), "_multiclass", True)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle, giving attributes added since the checkpoint was written their defaults."""
        self.__dict__.update({"last_alert": None, "inputs": None, **state})
        if "_binary" not in state:
            self._binary = self.task == "classification" and not getattr(
                final_step(self.model), "_multiclass", True)

    def label_problem(self, label: Any) -> str | None:
        """Why ``label`` cannot be learned by this model (checked before anything is
        touched, so a bad label never half-updates a pipeline), or None.

        >>> from schemas.models_file import ModelSpec
        >>> Learner.from_spec(ModelSpec(task="classification",
        ...     pipeline="linear_model.LogisticRegression()"), 10).label_problem("yes")
        'binary classifier: the label must be true/false (or 0/1), not str'
        """
        if label is None:
            return None
        if self.task == "regression":
            if isinstance(label, bool) or not isinstance(label, int | float):
                return f"regression: the label must be a number, not {type(label).__name__}"
        elif self._binary and not (isinstance(label, bool) or label in (0, 1)):
            return (f"binary classifier: the label must be true/false (or 0/1), "
                    f"not {type(label).__name__}")
        return None

    @classmethod
    def from_spec(cls, spec: ModelSpec, cooldown: int) -> "Learner":
        """A learner with a fresh model parsed from ``spec.pipeline``."""
        return cls(spec, build_pipeline(spec.pipeline), cooldown)

    def step(self, x: dict[str, Any], y: Any) -> Step:
        """Score ``x``, then (with a label, or always for anomaly models) learn from it.

        The prediction is made before learning (test-then-train); an exception
        while scoring leaves the learner untouched.
        """
        version = self.n_learned
        if self.task == "classification":
            proba = self.model.predict_proba_one(x)
            prediction = max(proba, key=proba.get) if proba else None
            scores: dict[str, float] | None = {class_key(c): p for c, p in proba.items()}
        elif self.task == "regression":
            prediction = self.model.predict_one(x)
            proba, scores = None, None
        else:
            prediction = self.model.score_one(x)
            proba, scores = None, None
        self.n_scored += 1
        watched = self.inputs.update(x, prediction) if self.inputs is not None else ()
        if self.task == "anomaly":
            self.model.learn_one(x)
            if y is not None:
                self.metric.update(y, prediction)
            return self._watch(prediction, prediction, version, scores, watched)
        if y is None:
            return Step(prediction, scores, version, False, None, False, watched)
        self.model.learn_one(x, y)
        if self.task == "classification":
            self.metric.update(y, proba if self._proba_metric else prediction)
            loss = 0.0 if prediction == y else 1.0
        else:
            self.metric.update(y, prediction)
            loss = abs(y - prediction)
        return self._watch(prediction, loss, version, scores, watched)

    def _watch(self, prediction: Any, value: float, version: int,
               scores: dict[str, float] | None,
               watched: list[WatchSignal] | tuple[()] = ()) -> Step:
        self.n_learned += 1
        signal = self.watcher.update(value)
        reset = (signal is not None and signal.kind == "worse"
                 and self.spec.drift.on_drift == "reset")
        if reset:
            self.reset()
        return Step(prediction, scores, version, True, signal, reset, watched)

    def adopt(self, spec: ModelSpec, cooldown: int) -> bool:
        """Take the models file's current settings for this (restored) learner.

        Returns False when the pipeline or task changed: the state then belongs to
        another model and must not be used. Drift settings and the metric follow the
        file (a new metric starts empty).
        """
        if (spec.pipeline, spec.task) != (self.spec.pipeline, self.spec.task):
            return False
        if spec.metric != self.spec.metric:
            self.metric = make_metric(spec.metric)
            self._proba_metric = not getattr(self.metric, "requires_labels", True)
        self.watcher.retune(spec.drift.delta, cooldown)
        new, old = spec.drift, self.spec.drift
        if self.inputs is None or (new.features, new.prediction, new.max_features) != (
                old.features, old.prediction, old.max_features):
            self.inputs = input_watch(spec, cooldown)
        else:
            self.inputs.cooldown = cooldown
        self.spec = spec
        return True

    def reset(self) -> None:
        """Start the model, metric and ADWIN window afresh (``on_drift = "reset"``)."""
        self.model = self.model.clone()
        self.metric = make_metric(self.spec.metric)
        self.watcher.reset()
        self.n_resets += 1
