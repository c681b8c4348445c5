"""ADWIN over a model's error (or anomaly score), telling worse from better.

River's ADWIN fires on any change of the mean, including the error falling
while a model learns; only a rise is an alert. One change can make ADWIN fire
several times, so after an alert the watcher is muted for ``cooldown``
observations. ADWIN's API has changed between River releases; this class is
the one place that knows it.

>>> import random
>>> rng = random.Random(7)
>>> watcher = DriftWatcher(delta=0.002, cooldown=500)
>>> signals = [watcher.update(float(rng.random() < (0.1 if i < 2000 else 0.6)))
...            for i in range(4000)]
>>> alerts = [s for s in signals if s is not None and s.kind == "worse"]
>>> len(alerts), 2000 <= alerts[0].n_seen < 2200, alerts[0].mean_after > alerts[0].mean_before
(1, True, True)
"""

from dataclasses import dataclass
from typing import Literal

from river import drift


@dataclass(frozen=True, slots=True)
class DriftSignal:
    """One ADWIN detection: ``worse`` (alert), ``better`` or ``muted`` (within cooldown)."""

    kind: Literal["worse", "better", "muted"]
    n_seen: int
    mean_before: float
    mean_after: float
    width: int


class DriftWatcher:
    """Watch a stream of losses (or scores) with ADWIN.

    Parameters
    ----------
    delta
        ADWIN's confidence; smaller means fewer, surer detections.
    cooldown
        Observations after an alert during which further rises are ``muted``.
    """

    def __init__(self, delta: float, cooldown: int) -> None:
        self.delta = delta
        self.cooldown = cooldown
        self.n_seen = 0
        self._muted_until = 0
        self._adwin = drift.ADWIN(delta=delta)

    @property
    def width(self) -> int:
        """Current ADWIN window length."""
        return int(self._adwin.width)

    @property
    def mean(self) -> float:
        """Mean of the current window."""
        return float(self._adwin.estimation)

    def update(self, value: float) -> DriftSignal | None:
        """Add one observation; return a signal when ADWIN detects a change."""
        before = self._adwin.estimation
        self._adwin.update(value)
        self.n_seen += 1
        if not self._adwin.drift_detected:
            return None
        after = self._adwin.estimation
        if after <= before:
            kind: Literal["worse", "better", "muted"] = "better"
        elif self.n_seen < self._muted_until:
            kind = "muted"
        else:
            kind = "worse"
            self._muted_until = self.n_seen + self.cooldown
        return DriftSignal(kind, self.n_seen, float(before), float(after), self.width)

    def retune(self, delta: float, cooldown: int) -> None:
        """Apply new settings; a new ``delta`` restarts the window."""
        if delta != self.delta:
            self.delta = delta
            self.reset()
        self.cooldown = cooldown

    def reset(self) -> None:
        """Forget the window (after the model itself was reset); keep the cooldown."""
        self._adwin = drift.ADWIN(delta=self.delta)


def watched_signal(task: str) -> Literal["score", "error"]:
    """What ADWIN watches for a model of ``task``: anomaly models their score, others
    their error. The one place this rule is written (alerts, metrics labels).

    >>> watched_signal("anomaly"), watched_signal("regression")
    ('score', 'error')
    """
    return "score" if task == "anomaly" else "error"
