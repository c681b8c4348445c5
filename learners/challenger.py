"""Champion / challenger: a second pipeline learns beside the served model and
replaces it once it is better.

The challenger sees every labelled event the champion learns: it predicts it (never
served), is scored on it, then learns it. Both models' metric is kept over the same
last ``window`` labelled events both predicted (River's ``utils.Rolling`` around the
model's metric). After ``min_events`` such events, a challenger better by ``margin``
(higher when the metric's ``bigger_is_better``, else lower) is promoted — at once
(``promote_on = "always"``), or only once the champion's drift alert has fired since
the last promotion (``"drift"``). :meth:`Challenger.step` then returns a
:class:`Promoted`; the caller (:class:`learners.learner.Learner`) swaps the models
with :meth:`Challenger.take`, which starts a fresh challenger from the same pipeline.

A challenger that raises is skipped for that event and counted in ``n_failed``
(one that raised while learning starts afresh: its state may be half-updated); the
champion never sees it.

>>> from schemas.models_file import ChallengerSpec
>>> spec = ChallengerSpec(pipeline="tree.HoeffdingTreeClassifier()", min_events=2,
...                       window=2, margin=0.5)
>>> c = Challenger(spec, "classification", "Accuracy")
>>> c.step({"x": 1.0}, True, False, drifted=False) is None   # challenger has no guess yet
True
>>> c.step({"x": 1.0}, True, False, drifted=False) is None   # compared once
True
>>> done = c.step({"x": 1.0}, True, False, drifted=False)    # 2 compared: 1.0 vs 0.0
>>> done.champion, done.challenger, done.n_compared
(0.0, 1.0, 2)
>>> new_champion = c.take()
>>> c.generation, c.n_compared, type(new_champion).__name__
(1, 0, 'HoeffdingTreeClassifier')
"""

import math
import uuid
from dataclasses import dataclass
from typing import Any

from river import utils

from learners.metric import make_metric
from learners.pipeline_text import build_pipeline
from schemas.models_file import ChallengerSpec

_NAMESPACE = uuid.UUID("0b7d6f52-3c1e-4a8e-9d41-6a2f5c9e8b17")


def promotion_id(model: str, partition: int, offset: int) -> str:
    """The id of the promotion of ``model``'s challenger on ``partition`` after ``offset``:
    the same whenever that promotion is replayed.

    >>> promotion_id("m", 0, 9) == promotion_id("m", 0, 9) != promotion_id("m", 1, 9)
    True
    """
    return str(uuid.uuid5(_NAMESPACE, f"{model}\x00{partition}\x00{offset}"))


def rolling_metric(name: str, window: int) -> utils.Rolling:
    """River metric ``name`` over the last ``window`` updates.

    Raises:
        ConfigError: unknown metric. ValueError: the metric cannot be reverted, so it
            cannot be computed over a window.

    >>> m = rolling_metric("MAE", 2)
    >>> for y, p in ((1.0, 2.0), (1.0, 1.0), (1.0, 1.0)):
    ...     m.update(y, p)
    >>> m.get()
    0.0
    """
    return utils.Rolling(type(make_metric(name)), window_size=window)


@dataclass(frozen=True, slots=True)
class Promoted:
    """Why the challenger was promoted: both metrics over the window, events compared."""

    champion: float
    challenger: float
    n_compared: int
    window: int
    metric: str
    pipeline: str
    #: The pipeline of the champion it replaces: None for the models file's own.
    champion_pipeline: str | None = None
    #: Promotions so far, this one included.
    generation: int = 0


def promotion_message(model: str, partition: int, offset: int, event_id: str,
                      promoted: Promoted, spec: ChallengerSpec, champion_pipeline: str,
                      at: str) -> dict[str, Any]:
    """The ``promotion`` message published on ``<prefix>incidents`` (see
    :class:`schemas.outputs.Promotion`); ``champion_pipeline``: the models file's, used
    when ``promoted`` replaced it.

    >>> from schemas.models_file import ChallengerSpec
    >>> done = Promoted(0.7, 0.8, 500, 500, "Accuracy", "tree.HoeffdingTreeClassifier()",
    ...                 None, 1)
    >>> msg = promotion_message("m", 0, 41, "e41", done, ChallengerSpec(pipeline=done.pipeline),
    ...                         "linear_model.LogisticRegression()", "2026-01-01T00:00:00Z")
    >>> msg["promotion_id"] == promotion_id("m", 0, 41), msg["champion_pipeline"]
    (True, 'linear_model.LogisticRegression()')
    """
    return {"type": "promotion", "promotion_id": promotion_id(model, partition, offset),
            "model": model, "partition": partition, "offset": offset, "event_id": event_id,
            "metric": promoted.metric, "champion_metric": promoted.champion,
            "challenger_metric": promoted.challenger, "window": promoted.window,
            "n_compared": promoted.n_compared, "margin": spec.margin,
            "promote_on": spec.promote_on,
            "champion_pipeline": promoted.champion_pipeline or champion_pipeline,
            "challenger_pipeline": promoted.pipeline, "generation": promoted.generation,
            "at": at}


class Challenger:
    """The challenger of one learner, and the comparison with its champion.

    Parameters
    ----------
    spec
        The models file's ``[models.X.challenger]``.
    task
        ``classification`` or ``regression``.
    metric
        The model's metric (a ``river.metrics`` class name).
    """

    def __init__(self, spec: ChallengerSpec, task: str, metric: str) -> None:
        self.spec = spec
        self.task = task
        self.metric = metric
        self.generation = 0
        self.n_failed = 0
        self.armed = False
        #: The pipeline of the promoted challenger now served; None: the models file's.
        self.serving: str | None = None
        self._fresh()

    def _fresh(self) -> None:
        self.model = build_pipeline(self.spec.pipeline)
        self.n_learned = 0
        self._windows()

    def _windows(self) -> None:
        self.champion_window = rolling_metric(self.metric, self.spec.window)
        self.challenger_window = rolling_metric(self.metric, self.spec.window)
        self.n_compared = 0
        probe = self.champion_window.obj
        self._bigger = bool(probe.bigger_is_better)
        self._proba = not getattr(probe, "requires_labels", True)

    def step(self, x: dict[str, Any], y: Any, champion: Any, drifted: bool) -> Promoted | None:
        """Score and teach the challenger ``(x, y)``; compare with the champion's guess.

        ``champion``: what the champion's metric takes for this event (its class
        probabilities for a probabilistic metric, else its prediction; None when it
        made none). ``drifted``: the champion's drift alert fired at this event.
        Returns a :class:`Promoted` when the challenger should now be served.
        """
        if drifted:
            self.armed = True
        guess = self._guess(x)
        try:
            self.model.learn_one(x, y)
            self.n_learned += 1
        except Exception:  # its state may be half-updated: start afresh
            self.n_failed += 1
            self._fresh()
            return None
        if guess is None or champion is None or champion == {}:
            return None
        self.champion_window.update(y, champion)
        self.challenger_window.update(y, guess)
        self.n_compared += 1
        return self._verdict()

    def _guess(self, x: dict[str, Any]) -> Any:
        """What the challenger's metric takes for ``x``, or None (no guess, or it raised)."""
        try:
            if self.task == "classification":
                proba = self.model.predict_proba_one(x)
                if not proba or not math.isfinite(sum(proba.values())):
                    return None
                return proba if self._proba else max(proba, key=proba.get)
            guess = self.model.predict_one(x)
        except Exception:
            self.n_failed += 1
            return None
        return guess if guess is not None and math.isfinite(guess) else None

    def _verdict(self) -> Promoted | None:
        spec = self.spec
        if self.n_compared < spec.min_events or (spec.promote_on == "drift" and not self.armed):
            return None
        champion, challenger = self.values()
        lead = challenger - champion if self._bigger else champion - challenger
        if not (lead > 0 and lead >= spec.margin):  # NaN never promotes
            return None
        return Promoted(champion, challenger, self.n_compared, spec.window, self.metric,
                        spec.pipeline, self.serving, self.generation + 1)

    def values(self) -> tuple[float, float]:
        """(champion, challenger): the metric over the window."""
        return float(self.champion_window.get()), float(self.challenger_window.get())

    def take(self) -> Any:
        """The promoted challenger's model; a fresh challenger takes its place."""
        model = self.model
        self.generation += 1
        self.serving = self.spec.pipeline
        self.armed = False
        self._fresh()
        return model

    def retune(self, spec: ChallengerSpec, metric: str) -> None:
        """Follow the models file: a changed pipeline starts a fresh challenger; a
        changed metric or window starts the comparison afresh."""
        old, self.spec = self.spec, spec
        new_metric, self.metric = metric != self.metric, metric
        if spec.pipeline != old.pipeline:
            self._fresh()
        elif new_metric or spec.window != old.window:
            self._windows()

    def view(self) -> dict[str, Any]:
        """The running comparison, for ``/models``."""
        champion, challenger = self.values()
        return {"pipeline": self.spec.pipeline, "metric": self.metric,
                "window": self.spec.window, "champion": champion, "challenger": challenger,
                "compared": self.n_compared, "min_events": self.spec.min_events,
                "margin": self.spec.margin, "promote_on": self.spec.promote_on,
                "armed": self.armed, "learned": self.n_learned, "failed": self.n_failed,
                "promotions": self.generation, "serving": self.serving}
