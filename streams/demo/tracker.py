"""What came out of the worker, as the demo reads it: pure bookkeeping, no I/O.

Each prediction is matched with the label the demo sent for its row, so accuracy is
known per row and model, in stream order, whatever order the records arrive in.

>>> t = Tracker(["a"], labels=[True, False], window=10)
>>> t.add("predictions", b'{"event_id": "sea-0", "model": "a", "prediction": true}')
>>> t.add("predictions", b'{"event_id": "sea-1", "model": "a", "prediction": true}')
>>> t.add("deadletter", b'{"error": {"type": "invalid_json"}}')
>>> t.rolling_accuracy("a"), t.correct["a"], dict(t.deadletters), t.outputs
(0.5, [True, False], {'invalid_json': 1}, 3)
"""

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas import constants
from streams.demo.dataset import row_of
from streams.demo.probe import WorkerStats


@dataclass(frozen=True)
class AlertSeen:
    """One drift alert from the alerts topic, placed in the stream by its event's row."""

    model: str
    partition: int
    offset: int
    row: int
    action: str
    mean_before: float
    mean_after: float


class Tracker:
    """Counts and per-row correctness of everything read from the output topics.

    Parameters
    ----------
    models
        The models the demo sends each row to.
    labels
        Each row's true label, in stream order.
    window
        Predictions (per model, in arrival order) behind the live rolling accuracy.
    """

    def __init__(self, models: list[str], labels: list[Any], window: int) -> None:
        self.models = models
        self.labels = labels
        self.correct: dict[str, list[bool | None]] = {m: [None] * len(labels) for m in models}
        self.recent: dict[str, deque[bool]] = {m: deque(maxlen=window) for m in models}
        self.predictions: Counter[str] = Counter()
        self.deadletters: Counter[str] = Counter()
        self.alerts: list[AlertSeen] = []
        self.outputs = 0

    def add(self, suffix: str, value: bytes | None) -> None:
        """Take one record of the output topic ``suffix`` (predictions, deadletter, alerts)."""
        if value is None:
            return
        data = orjson.loads(value)
        if suffix == constants.PREDICTIONS:
            self.outputs += 1
            model = data["model"]
            self.predictions[model] += 1
            if model in self.correct:
                row = row_of(data["event_id"])
                hit = data["prediction"] == self.labels[row]
                self.correct[model][row] = hit
                self.recent[model].append(hit)
        elif suffix == constants.DEADLETTER:
            self.outputs += 1
            self.deadletters[data["error"]["type"]] += 1
        elif suffix == constants.ALERTS and data.get("alert", "drift") == "drift" and data.get(
                "signal") in ("error", "score"):  # model_unhealthy / feature alerts: not drift
            self.alerts.append(AlertSeen(data["model"], data["partition"], data["offset"],
                                         row_of(data["event_id"]), data["action"],
                                         data["mean_before"], data["mean_after"]))

    def rolling_accuracy(self, model: str) -> float | None:
        """Accuracy over the model's last ``window`` predictions read (None before any)."""
        recent = self.recent[model]
        return sum(recent) / len(recent) if recent else None


@dataclass
class RunState:
    """Where the run stands: what was sent, what came out, what the worker says.

    >>> s = RunState(total=10, tracker=Tracker(["a"], [True], window=5), started=0.0)
    >>> s.sample(1.0); s.tracker.outputs = 40; s.sample(3.0); s.outputs_per_second()
    20.0
    """

    total: int
    tracker: Tracker
    started: float
    sent: int = 0
    labels_sent: int = 0  # late labels sent to the feedback topic
    sending_done: bool = False
    drifts: tuple[int, ...] = ()
    stats: WorkerStats = field(default_factory=WorkerStats)
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=20))

    def sample(self, now: float) -> None:
        """Note how many outputs were read by ``now`` (monotonic seconds)."""
        self.samples.append((now, self.tracker.outputs))

    def outputs_per_second(self) -> float:
        """Outputs read per second over the recent samples (0 before two)."""
        if len(self.samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
