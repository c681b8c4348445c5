"""ADWIN over a model's error (or anomaly score), telling worse from better.

ADWIN's bound assumes observations in [0, 1]; a raw absolute error or anomaly
score has any scale and, with heavy tails, makes it fire on noise (a
lognormal error gave 16 alarms in 40,000 stationary events). So the watched
signal is made scale-free first, like River's ``DriftRetrainingClassifier``,
which feeds its detector a 0/1 "was the prediction wrong":

* classifiers: the 0/1 loss, as is (ADWIN watches the error rate);
* regressors and anomaly detectors (``continuous=True``): 1 when the value is
  above the running 90th percentile of the values seen so far (P² estimate),
  else 0 (0.1 before there is one). Under a stationary stream its mean is 0.1
  whatever the distribution's scale or shape; when errors grow, it rises. The
  upper tail is watched rather than the median because a learning model that
  shifts its predictions a little moves many errors across the median but few
  across the 90th percentile. ``mean_before``/``mean_after`` of an alert are then
  shares of errors above that percentile (0..1), not errors in their own units.

River's ADWIN fires on any change of the mean, including the error falling
while a model learns; only a rise can be an alert, and only once confirmed:
after ADWIN detects a rise, the next ``CONFIRM`` observations are compared with
the part of the window ADWIN dropped (continuous values against the percentile
as it was at the detection), and both halves of them must be above it by an
effect size (Cohen's h, :func:`effect_size`) of at least ``min_effect``. That
rules out transients (an outlier that kicks an SGD model for a hundred events)
and changes too small to matter, and delays an alert by ``CONFIRM``
observations. After an alert the watcher is muted for
``cooldown`` observations. ADWIN's API has changed between River releases;
this module is the one place that knows it.

>>> import random
>>> rng = random.Random(7)
>>> watcher = DriftWatcher(delta=0.002, cooldown=500, min_effect=0.2)
>>> signals = [watcher.update(float(rng.random() < (0.1 if i < 2000 else 0.6)))
...            for i in range(4000)]
>>> alerts = [s for s in signals if s is not None and s.kind == "worse"]
>>> len(alerts), 2000 + CONFIRM <= alerts[0].n_seen < 2200 + CONFIRM
(1, True)
>>> round(alerts[0].mean_before, 1), round(alerts[0].mean_after, 1)
(0.1, 0.6)
>>> noisy = DriftWatcher(delta=0.002, cooldown=500, continuous=True, min_effect=0.2)
>>> [s for s in (noisy.update(rng.lognormvariate(0, 1.5)) for _ in range(20000))
...  if s and s.kind == "worse"]
[]
"""

import math
from dataclasses import dataclass
from typing import Literal

from river import drift, stats

#: Observations after ADWIN's detection of a rise that must confirm it.
CONFIRM = 400
#: The percentile continuous values are compared with.
QUANTILE = 0.9


@dataclass(frozen=True, slots=True)
class DriftSignal:
    """One ADWIN detection: ``better`` (the signal fell), or a confirmed rise:
    ``worse`` (alert), ``muted`` (within cooldown) or ``small`` (not confirmed: the
    rise was below ``min_effect`` in either half of the confirming observations).

    ``mean_before`` is the watched signal's mean over the part of the window ADWIN
    dropped, ``mean_after`` its mean after the change (for a rise, over the
    ``CONFIRM`` observations that followed the detection); ``width`` is ADWIN's
    window at the detection.
    """

    kind: Literal["worse", "better", "muted", "small"]
    n_seen: int
    mean_before: float
    mean_after: float
    width: int


def effect_size(before: float, after: float) -> float:
    """Cohen's h between two proportions: ``2·asin(√after) - 2·asin(√before)``.

    Scale-free for rates: an error rate from 1% to 4%, or from 10% to 17%, is h ≈ 0.2
    (Cohen's "small" effect), from 10% to 11% only 0.03.

    >>> round(effect_size(0.01, 0.04), 2), round(effect_size(0.10, 0.168), 2)
    (0.2, 0.2)
    """
    clip = min(max(after, 0.0), 1.0), min(max(before, 0.0), 1.0)
    return 2.0 * math.asin(math.sqrt(clip[0])) - 2.0 * math.asin(math.sqrt(clip[1]))


class DriftWatcher:
    """Watch a stream of losses (or scores) with ADWIN.

    Parameters
    ----------
    delta
        ADWIN's confidence; smaller means fewer, surer detections.
    cooldown
        Observations after an alert during which further rises are ``muted``.
    continuous
        The values have any scale (absolute errors, anomaly scores): watch whether
        each is above their running median instead of the value itself.
    min_effect
        Smallest confirmed rise of the watched signal, as Cohen's h (0.2: "small").
    """

    def __init__(self, delta: float, cooldown: int, continuous: bool = False,
                 min_effect: float = 0.0) -> None:
        self.delta = delta
        self.cooldown = cooldown
        self.continuous = continuous
        self.min_effect = min_effect
        self.n_seen = 0
        self._muted_until = 0
        self._adwin = drift.ADWIN(delta=delta)
        self._quantile = stats.Quantile(QUANTILE)
        #: a detected rise being confirmed: [before, threshold, early sum, late sum, n, width]
        self._pending: list[float] | None = None
        self._total = 0.0
        self._width = 0

    @property
    def width(self) -> int:
        """Current ADWIN window length."""
        return int(self._adwin.width)

    @property
    def mean(self) -> float:
        """Mean of the watched signal over the current window."""
        return float(self._adwin.estimation)

    def signal(self, value: float) -> float:
        """The scale-free observation ``value`` becomes (and, for continuous values,
        update the running percentile with it)."""
        if not self.continuous:
            return value
        threshold = self._quantile.get()
        self._quantile.update(value)
        if threshold is None:
            return 1.0 - QUANTILE
        return 1.0 if value > threshold else 0.0

    def update(self, value: float) -> DriftSignal | None:
        """Add one finite observation; return a signal when ADWIN detects a change (a
        fall at once, a rise once confirmed)."""
        observed = self.signal(value) if self.continuous else value
        self.n_seen += 1
        confirmed = self._confirm(value, observed) if self._pending is not None else None
        adwin = self._adwin
        adwin.update(observed)
        # ADWIN's window, kept alongside (cheaper than asking it before every update)
        self._total += observed
        self._width += 1
        if not adwin.drift_detected:
            return confirmed
        width, total = self._width, self._total
        self._total, self._width = 0.0, 0  # River's ADWIN empties itself on the next update
        if self._pending is not None:
            return confirmed
        kept, kept_total = adwin.width, adwin.total
        dropped = width - kept
        before = (total - kept_total) / dropped if dropped > 0 else 0.0
        after = kept_total / kept if kept else 0.0
        if after <= before:
            return confirmed or DriftSignal("better", self.n_seen, float(before),
                                            float(after), width)
        threshold = self._quantile.get() if self.continuous else None
        self._pending = [float(before), -1.0 if threshold is None else float(threshold),
                         0.0, 0.0, 0, float(width)]
        return confirmed

    def _confirm(self, value: float, observed: float) -> DriftSignal | None:
        pending = self._pending
        assert pending is not None
        before, threshold, _, _, n, width = pending
        if self.continuous and threshold >= 0.0:
            observed = 1.0 if value > threshold else 0.0
        pending[2 if n < CONFIRM // 2 else 3] += observed
        pending[4] = n = n + 1
        if n < CONFIRM:
            return None
        self._pending = None
        half = CONFIRM // 2
        early, late = pending[2] / half, pending[3] / (CONFIRM - half)
        after = (pending[2] + pending[3]) / CONFIRM
        kind: Literal["worse", "better", "muted", "small"]
        if effect_size(before, min(early, late)) < self.min_effect or after <= before:
            kind = "small"
        elif self.n_seen < self._muted_until:
            kind = "muted"
        else:
            kind = "worse"
            self._muted_until = self.n_seen + self.cooldown
        return DriftSignal(kind, self.n_seen, before, after, int(width))

    def retune(self, delta: float, cooldown: int, min_effect: float) -> None:
        """Apply new settings; a new ``delta`` restarts the window."""
        if delta != self.delta:
            self.delta = delta
            self.reset()
        self.cooldown = cooldown
        self.min_effect = min_effect

    def reset(self) -> None:
        """Forget the window, the percentile and a rise being confirmed (after the model
        itself was reset); keep the cooldown."""
        self._adwin = drift.ADWIN(delta=self.delta)
        self._quantile = stats.Quantile(QUANTILE)
        self._pending = None
        self._total, self._width = 0.0, 0



def watched_signal(task: str) -> Literal["score", "error"]:
    """What ADWIN watches for a model of ``task``: anomaly models their score, others
    their error. The one place this rule is written (alerts, metrics labels).

    >>> watched_signal("anomaly"), watched_signal("regression")
    ('score', 'error')
    """
    return "score" if task == "anomaly" else "error"
