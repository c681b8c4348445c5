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
    #: Models with a challenger: how many promotions the serving model is from the models
    #: file's pipeline (0: that pipeline; n: the challenger promoted n-th).
    generation: int | None = None


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
    """A change seen on one partition: the model got worse (``error``/``score``, ADWIN),
    or, without labels, a feature's or the predictions' distribution moved.

    ``event_time``: the event's own ``timestamp`` (else its Kafka record's), epoch ms.
    For ``feature``/``prediction`` alerts ``feature`` names the feature (None for
    predictions) and ``before``/``after`` summarise both sides (``{"mean": ...}`` or
    category frequencies); ``delta`` is ADWIN's, or the chi-square test's level.

    ``mean_before``/``mean_after``: the watched signal before and after the change —
    the error rate for classifiers; for regressors (``signal = "error"``) and anomaly
    models (``"score"``) the share of values above their running 90th percentile.
    """

    alert: Literal["drift"] = "drift"
    model: str
    partition: int
    signal: Literal["error", "score", "feature", "prediction"]
    detector: Literal["ADWIN", "chi2"]
    delta: float
    offset: int
    event_id: str
    n_seen: int
    mean_before: float
    mean_after: float
    width: int
    at: str
    action: Literal["none", "reset"]
    event_time: int | None = None
    feature: str | None = None
    before: dict[str, float] | None = None
    after: dict[str, float] | None = None
    #: The topic ``offset`` belongs to: the events topic, or the feedback topic when a
    #: late label showed the change (None in alerts written before it was named).
    topic: str | None = None


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


class Detection(_Message):
    """One partition's alert inside an incident."""

    partition: int
    offset: int
    signal: str
    feature: str | None
    detector: str | None
    event_id: str | None
    event_time: int
    mean_before: float | None
    mean_after: float | None


class Incident(_Message):
    """One drift incident of a model: its alerts from every partition within
    ``window_ms`` of event time of the first. Re-published with the same
    ``incident_id`` and a higher ``version`` as partitions join; keep the latest."""

    incident_id: str
    model: str
    first_event_time: int
    last_event_time: int
    window_ms: float
    partitions: list[int]
    signals: list[str]
    detections: list[Detection]
    n_alerts: int
    version: int
    published_at: str


class Promotion(_Message):
    """A challenger became the champion of (model, partition) after the event at
    ``offset``; the next event is served by it. Published on ``<prefix>incidents`` keyed
    by model. ``promotion_id`` is derived from (model, partition, offset): a
    promotion replayed after a crash carries the same id. ``champion_metric`` and
    ``challenger_metric`` are ``metric`` over the last ``window`` labelled events both
    predicted (``n_compared`` since the challenger started)."""

    type: Literal["promotion"]
    promotion_id: str
    model: str
    partition: int
    offset: int
    event_id: str
    metric: str
    champion_metric: float
    challenger_metric: float
    window: int
    n_compared: int
    margin: float
    promote_on: Literal["drift", "always"]
    champion_pipeline: str
    challenger_pipeline: str
    generation: int
    at: str
