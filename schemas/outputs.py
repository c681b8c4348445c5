"""The messages Driftline publishes: predictions, dead letters and drift alerts.

The worker's hot path writes these as plain dicts with orjson; these models are
the contract, and the tests validate every published message against them.

>>> p = Prediction(event_id="e1", model="default", prediction=True,
...                scores={"false": 0.2, "true": 0.8}, model_version=10, learned=True,
...                partition=0, offset=41, scored_at="2026-01-01T00:00:00.000+00:00")
>>> p.scores["true"]
0.8
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from schemas.event import Label


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Prediction(_Message):
    """The answer to one event, keyed like the event."""

    event_id: str
    model: str
    prediction: Label | None
    scores: dict[str, float] | None
    model_version: int
    learned: bool
    partition: int
    offset: int
    scored_at: str


class ErrorInfo(_Message):
    """Why an event could not be scored."""

    type: str
    message: str
    details: list[Any]


class DeadLetter(_Message):
    """A message that could not be scored, with its original payload."""

    topic: str
    partition: int
    offset: int
    key: str | None
    key_encoding: Literal["base64"] | None = None
    key_truncated: bool = False
    payload: str | None
    payload_encoding: Literal["base64"] | None = None
    payload_truncated: bool = False
    payload_length: int | None = None
    payload_sha256: str | None = None
    error: ErrorInfo
    at: str


class DriftAlert(_Message):
    """ADWIN saw a model get worse on one partition.

    ``mean_before``/``mean_after``: the watched signal before and after the change —
    the error rate for classifiers; for regressors (``signal = "error"``) and anomaly
    models (``"score"``) the share of values above their running 90th percentile.
    """

    alert: Literal["drift"] = "drift"
    model: str
    partition: int
    signal: Literal["error", "score"]
    detector: Literal["ADWIN"]
    delta: float
    offset: int
    event_id: str
    n_seen: int
    mean_before: float
    mean_after: float
    width: int
    at: str
    action: Literal["none", "reset"]


class HealthAlert(_Message):
    """A model's state was found broken (non-finite, or half-updated by a failed learn)
    and was restored (``action``: ``fresh`` = started afresh) at this event."""

    alert: Literal["model_unhealthy"]
    model: str
    partition: int
    offset: int
    event_id: str
    reason: str
    action: Literal["fresh", "checkpoint"]
    at: str
