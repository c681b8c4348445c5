"""Drift without labels: watch a model's inputs and its own predictions.

Three watchers, one per kind of value, all pure and picklable (they are
checkpointed with the learner):

- :class:`NumericWatch` — ADWIN on the value itself (River's ``drift.ADWIN``),
  a detection in either direction is a change of distribution. Chosen over
  KSWIN and Page-Hinkley by ``bench/drift_detection.py`` (docs/benchmarks.md):
  ~0.3 µs per value and no false alarm in 50,000 stationary values, where KSWIN
  costs ~280 µs and raises dozens.
- :class:`CategoryWatch` — a categorical value's frequencies: each tumbling
  window of ``window`` values against the one before, compared with a
  chi-square test of homogeneity; below ``alpha`` it is a change. Comparing
  neighbours (not a fixed first reference) keeps a model that is still
  learning from looking like drift. Counting is one dict increment per value.
- :class:`FeatureWatch` — per model: one watcher per feature (at most
  ``max_features``, the first seen) and one for the predictions, with the
  alert cooldown of the error watcher (a change is reported once).

>>> import random
>>> rng = random.Random(1)
>>> watch = FeatureWatch(features=True, prediction=False, max_features=50, cooldown=1000)
>>> alerts = []
>>> for i in range(6000):
...     x = {f"x{k}": rng.gauss(0, 1) for k in range(3)}
...     if i >= 3000:
...         x["x1"] += 2.0
...     alerts += watch.update(x, None)
>>> [(a.signal, a.feature, a.detector) for a in alerts]
[('feature', 'x1', 'ADWIN')]
>>> 3000 <= alerts[0].n_seen < 3100, alerts[0].mean_before < 0.5 < alerts[0].mean_after
(True, True)
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from river import drift
from scipy.stats import chi2_contingency

#: Categories tracked per categorical value; rarer ones are counted as ``other``.
MAX_CATEGORIES = 20
OTHER = "(other)"


@dataclass(frozen=True, slots=True)
class WatchSignal:
    """One change seen in a feature's (or the predictions') distribution.

    ``mean_before``/``mean_after``: the numeric window's mean before and after the
    detection, or for a categorical value the frequency of the category that moved
    most; ``before``/``after`` summarise the two sides (``{"mean": ...}`` or the
    category frequencies); ``level`` is ADWIN's delta or the chi-square test's alpha.
    """

    signal: Literal["feature", "prediction"]
    feature: str | None
    detector: Literal["ADWIN", "chi2"]
    n_seen: int
    mean_before: float
    mean_after: float
    width: int
    level: float
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)


class NumericWatch:
    """ADWIN on a numeric value; a detection either way is a change.

    >>> w = NumericWatch(delta=0.002)
    >>> hits = [w.update(float(i >= 2000)) for i in range(2500)]
    >>> found = [h for h in hits if h is not None]
    >>> found[0][1] < found[0][2]   # (n_seen, mean_before, mean_after)
    True
    """

    detector: Literal["ADWIN", "chi2"] = "ADWIN"

    def __init__(self, delta: float) -> None:
        self.n_seen = 0
        self._adwin = drift.ADWIN(delta=delta)

    @property
    def width(self) -> int:
        """ADWIN's current window length."""
        return int(self._adwin.width)

    def update(self, value: float) -> tuple[int, float, float] | None:
        """Add ``value``; on a detection return (n_seen, mean before, mean after)."""
        adwin = self._adwin
        before = adwin.estimation
        adwin.update(value)
        self.n_seen += 1
        if adwin.drift_detected:
            return self.n_seen, float(before), float(adwin.estimation)
        return None


class CategoryWatch:
    """Frequencies of a categorical value: each window vs the one before, chi-square.

    >>> w = CategoryWatch(window=500, alpha=1e-4)
    >>> values = ["a", "b"] * 1000 + ["a", "c", "c", "c"] * 500
    >>> found = [r for r in (w.update(v) for v in values) if r is not None]
    >>> len(found), found[0][0], found[0][2]["c"]
    (1, 2500, 0.75)
    """

    detector: Literal["ADWIN", "chi2"] = "chi2"

    def __init__(self, window: int, alpha: float) -> None:
        self.window = window
        self.alpha = alpha
        self.n_seen = 0
        self.reference: Counter[str] | None = None
        self.current: Counter[str] = Counter()
        self._filled = 0

    @property
    def width(self) -> int:
        """Values in the reference window plus the current one."""
        return (self.window if self.reference is not None else 0) + self._filled

    def update(self, value: Any) -> tuple[int, dict[str, float], dict[str, float]] | None:
        """Count ``value``; when a window closes and differs from the reference, return
        (n_seen, frequencies before, frequencies after)."""
        key = ("true" if value else "false") if isinstance(value, bool) else str(value)
        current = self.current
        if key not in current and len(current) >= MAX_CATEGORIES:
            key = OTHER
        current[key] += 1
        self.n_seen += 1
        self._filled += 1
        if self._filled < self.window:
            return None
        self.current, self._filled = Counter(), 0
        reference = self.reference
        if reference is None:
            self.reference = current
            return None
        self.reference = current
        if not _differ(reference, current, self.alpha):
            return None
        return self.n_seen, _frequencies(reference), _frequencies(current)


def _frequencies(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.most_common()}


def _differ(reference: Counter[str], current: Counter[str], alpha: float) -> bool:
    keys = sorted(reference.keys() | current.keys())
    if len(keys) < 2:
        return False
    table = [[reference.get(k, 0) for k in keys], [current.get(k, 0) for k in keys]]
    return bool(chi2_contingency(table).pvalue < alpha)


class FeatureWatch:
    """All of one model's label-free watchers, with the alert cooldown.

    Parameters
    ----------
    features
        Watch the input features (numbers with :class:`NumericWatch`, strings and
        booleans with :class:`CategoryWatch`).
    prediction
        Watch the model's predictions (numbers: ADWIN; classes: chi-square).
    max_features
        Features watched at most, the first seen; later ones are ignored.
    cooldown
        Values of the same feature after an alert during which further detections
        are muted (one change, one alert).
    delta, window, alpha
        ADWIN's confidence; the categorical window length and test level.
    """

    def __init__(self, features: bool, prediction: bool, max_features: int, cooldown: int,
                 delta: float = 0.002, window: int = 1000, alpha: float = 1e-4) -> None:
        self.features = features
        self.prediction = prediction
        self.max_features = max_features
        self.cooldown = cooldown
        self.delta = delta
        self.window = window
        self.alpha = alpha
        self.watchers: dict[str, NumericWatch | CategoryWatch] = {}
        self.predictions: NumericWatch | CategoryWatch | None = None
        self.muted_until: dict[str | None, int] = {}

    def _new(self, value: Any) -> NumericWatch | CategoryWatch:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return NumericWatch(self.delta)
        return CategoryWatch(self.window, self.alpha)

    def update(self, x: dict[str, Any], prediction: Any) -> list[WatchSignal]:
        """Watch one event's features and prediction; return the alerts it raised."""
        found: list[WatchSignal] = []
        if self.features:
            watchers = self.watchers
            for name, value in x.items():
                watcher = watchers.get(name)
                if watcher is None:
                    if len(watchers) >= self.max_features:
                        continue
                    watcher = watchers[name] = self._new(value)
                elif isinstance(watcher, NumericWatch) and not isinstance(value, int | float):
                    continue  # a string where numbers were seen: not this watcher's business
                hit = watcher.update(value)
                if hit is not None:
                    self._report(found, "feature", name, watcher, hit)
        if self.prediction and prediction is not None:
            if self.predictions is None:
                self.predictions = self._new(prediction)
            hit = self.predictions.update(prediction)
            if hit is not None:
                self._report(found, "prediction", None, self.predictions, hit)
        return found

    def _report(self, found: list[WatchSignal], signal: Literal["feature", "prediction"],
                name: str | None, watcher: NumericWatch | CategoryWatch, hit: tuple) -> None:
        n_seen = hit[0]
        if n_seen < self.muted_until.get(name, 0):
            return
        self.muted_until[name] = n_seen + self.cooldown
        if isinstance(watcher, NumericWatch):
            _, before, after = hit
            found.append(WatchSignal(signal, name, "ADWIN", n_seen, before, after,
                                     watcher.width, self.delta, {"mean": before}, {"mean": after}))
            return
        _, freq_before, freq_after = hit
        moved = max(freq_before.keys() | freq_after.keys(),
                    key=lambda k: abs(freq_after.get(k, 0.0) - freq_before.get(k, 0.0)))
        found.append(WatchSignal(signal, name, "chi2", n_seen, freq_before.get(moved, 0.0),
                                 freq_after.get(moved, 0.0), watcher.width, self.alpha,
                                 freq_before, freq_after))
