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
from learners.metric import make_metric
from learners.pipeline_text import build_pipeline
from schemas.models_file import ModelSpec


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
        self._proba_metric = not getattr(self.metric, "requires_labels", True)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle, giving attributes added since the checkpoint was written their defaults."""
        self.__dict__.update({"last_alert": None, **state})

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
        if self.task == "anomaly":
            self.model.learn_one(x)
            if y is not None:
                self.metric.update(y, prediction)
            return self._watch(prediction, prediction, version, scores)
        if y is None:
            return Step(prediction, scores, version, False, None, False)
        self.model.learn_one(x, y)
        if self.task == "classification":
            self.metric.update(y, proba if self._proba_metric else prediction)
            loss = 0.0 if prediction == y else 1.0
        else:
            self.metric.update(y, prediction)
            loss = abs(y - prediction)
        return self._watch(prediction, loss, version, scores)

    def _watch(self, prediction: Any, value: float, version: int,
               scores: dict[str, float] | None) -> Step:
        self.n_learned += 1
        signal = self.watcher.update(value)
        reset = (signal is not None and signal.kind == "worse"
                 and self.spec.drift.on_drift == "reset")
        if reset:
            self.reset()
        return Step(prediction, scores, version, True, signal, reset)

    def reset(self) -> None:
        """Start the model, metric and ADWIN window afresh (``on_drift = "reset"``)."""
        self.model = self.model.clone()
        self.metric = make_metric(self.spec.metric)
        self.watcher.reset()
        self.n_resets += 1
