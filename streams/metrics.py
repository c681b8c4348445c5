"""Prometheus metrics of one worker, in a registry of its own.

>>> m = Metrics()
>>> m.declare({"fraud": "classification"}, ("invalid_json",))
>>> b'driftline_drift_alerts_total{model="fraud",signal="error"} 0.0' in m.render()
True
"""

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from learners.drift import watched_signal
from learners.feedback import OUTCOMES
from streams.batch_histogram import BatchHistogram

if TYPE_CHECKING:
    from streams.processor import BatchResult

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric the worker exports, named by Prometheus conventions."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.consumed = Counter("driftline_events_consumed_total",
                                "Records consumed from the events topic.", registry=r)
        self.skipped = Counter("driftline_events_skipped_total",
                               "Replayed records the restored state already reflected.",
                               registry=r)
        self.scored = Counter("driftline_events_scored_total", "Events scored.", ["model"],
                              registry=r)
        self.learned = Counter("driftline_events_learned_total", "Events learned from.",
                               ["model"], registry=r)
        self.predictions = Counter("driftline_predictions_total", "Predictions published.",
                                   ["model"], registry=r)
        self.deadletters = Counter("driftline_deadletters_total", "Dead letters published.",
                                   ["reason"], registry=r)
        self.alerts = Counter("driftline_drift_alerts_total",
                              "Drift alerts published (the model got worse).",
                              ["model", "signal"], registry=r)
        self.drift_improvements = Counter(
            "driftline_drift_improvements_total",
            "ADWIN detections where the error fell (no alert).", ["model"], registry=r)
        self.drift_muted = Counter("driftline_drift_muted_total",
                                   "ADWIN rises muted by the alert cooldown.", ["model"],
                                   registry=r)
        self.processing = Histogram("driftline_processing_seconds",
                                    "Processing time per event (batch time / batch size).",
                                    buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3,
                                             2.5e-3, 1e-2), registry=r)
        self.batch = Histogram("driftline_batch_seconds",
                               "Time from a batch consumed to its outputs acknowledged.",
                               buckets=_LATENCY_BUCKETS, registry=r)
        self.latency = BatchHistogram("driftline_end_to_end_latency_seconds",
                                      "Event timestamp (else the Kafka record's) to "
                                      "prediction acknowledged.", _LATENCY_BUCKETS, r)
        self.model_metric = Gauge("driftline_model_metric", "Current metric value.",
                                  ["model", "partition", "metric"], registry=r)
        self.adwin_width = Gauge("driftline_adwin_width", "ADWIN window length.",
                                 ["model", "partition"], registry=r)
        self.adwin_mean = Gauge("driftline_adwin_mean", "Mean of ADWIN's window.",
                                ["model", "partition"], registry=r)
        self.checkpoint_seconds = Histogram("driftline_checkpoint_duration_seconds",
                                            "Time to write one partition's checkpoint.",
                                            buckets=_LATENCY_BUCKETS, registry=r)
        self.checkpoint_bytes = Counter("driftline_checkpoint_bytes_total",
                                        "Bytes of checkpoints written.", registry=r)
        self.checkpoints = Counter("driftline_checkpoints_total", "Checkpoints written.",
                                   registry=r)
        self.checkpoint_failures = Counter("driftline_checkpoint_failures_total",
                                           "Checkpoints that failed: a Redis write (retried) or a "
                                           "snapshot child.", registry=r)
        self.checkpoint_rejected = Counter("driftline_checkpoints_rejected_total",
                                           "Checkpoints refused at restore.", ["reason"],
                                           registry=r)
        self.fresh_starts = Counter("driftline_checkpoint_fresh_starts_total",
                                    "Models started afresh because their committed "
                                    "checkpoint was missing, unverifiable or older "
                                    "(DRIFTLINE_CHECKPOINT_UNVERIFIABLE=fresh).", ["model"],
                                    registry=r)
        self.checkpoint_size = Gauge("driftline_checkpoint_size_bytes",
                                     "Size of the last checkpoint written.",
                                     ["model", "partition"], registry=r)
        self.offset_gaps = Counter("driftline_offset_gap_total",
                                   "Restores whose resume offset was below the log start "
                                   "(retention dropped records the model never learned).",
                                   ["partition"], registry=r)
        self.offset_gap_events = Counter("driftline_offset_gap_events_total",
                                         "Offsets skipped by those gaps.", ["partition"],
                                         registry=r)
        self.offset_out_of_range = Counter(
            "driftline_offset_out_of_range_total",
            "Assignments whose checkpoint or committed offset lay past the log end (topic "
            "deleted, re-created or truncated).", ["partition"], registry=r)
        self.checkpoint_age = Gauge("driftline_checkpoint_age_seconds",
                                    "Seconds since the partition's last checkpoint was "
                                    "written, while events wait for one (0 when every "
                                    "processed event is in a checkpoint).", ["partition"],
                                    registry=r)
        self.lag = Gauge("driftline_consumer_lag", "High watermark minus position.",
                         ["partition"], registry=r)
        self.incidents = Counter("driftline_incidents_total",
                                 "Drift incidents opened (one per model per change, whatever "
                                 "the number of partitions).", ["model"], registry=r)
        self.incident_updates = Counter("driftline_incident_updates_total",
                                        "Incident messages published (first and each "
                                        "partition or signal that joined).", ["model"],
                                        registry=r)
        self.incident_partitions = Gauge("driftline_incident_partitions",
                                         "Partitions in the model's latest incident.",
                                         ["model"], registry=r)
        self.promotions = Counter("driftline_promotions_total",
                                  "Challengers promoted to champion (per partition, each "
                                  "counted once).", ["model"], registry=r)
        self.challenger_failures = Counter(
            "driftline_challenger_failures_total",
            "Events a challenger raised on (skipped by it; the champion served them).",
            ["model"], registry=r)
        self.window_metric = Gauge(
            "driftline_window_metric",
            "The model's metric over the champion/challenger comparison window.",
            ["model", "partition", "metric", "role"], registry=r)
        self.feedback = Counter("driftline_feedback_total",
                                "Late labels and pending predictions by outcome (matched, "
                                "duplicate, unmatched, early, expired, evicted).",
                                ["model", "outcome"], registry=r)
        self.assigned = Gauge("driftline_assigned_partitions", "Partitions assigned.",
                              registry=r)

    def declare(self, models: dict[str, str], reasons: tuple[str, ...]) -> None:
        """Create every labelled counter at 0 (model -> task), so that ``rate()`` and
        ``increase()`` see their first step instead of a series born at 1."""
        for model, task in models.items():
            for counter in (self.scored, self.learned, self.predictions,
                            self.drift_improvements, self.drift_muted):
                counter.labels(model=model)
            self.alerts.labels(model=model, signal=watched_signal(task))
            for outcome in OUTCOMES:
                self.feedback.labels(model=model, outcome=outcome)
        for reason in reasons:
            self.deadletters.labels(reason=reason)
        for model in models:
            self.fresh_starts.labels(model=model)

    def declare_partition(self, partition: int) -> None:
        """Create an assigned partition's gap and out-of-range counters at 0.

        >>> m = Metrics()
        >>> m.declare_partition(3)
        >>> b'driftline_offset_gap_events_total{partition="3"} 0.0' in m.render()
        True
        """
        for counter in (self.offset_gaps, self.offset_gap_events, self.offset_out_of_range):
            counter.labels(partition=str(partition))

    def declare_drift(self, models: list[str]) -> None:
        """Create every model's incident, promotion and label-free alert series at 0
        (feature and prediction alerts whether or not the model watches them, so that
        rules and dashboards have a series to read).

        >>> m = Metrics()
        >>> m.declare_drift(["fraud"])
        >>> b'driftline_incidents_total{model="fraud"} 0.0' in m.render()
        True
        >>> b'driftline_drift_alerts_total{model="fraud",signal="feature"} 0.0' in m.render()
        True
        """
        for model in models:
            self.incidents.labels(model=model)
            self.incident_updates.labels(model=model)
            self.incident_partitions.labels(model=model).set(0)
            self.promotions.labels(model=model)
            self.challenger_failures.labels(model=model)
            for signal in ("feature", "prediction"):
                self.alerts.labels(model=model, signal=signal)

    def observe_batch(self, result: "BatchResult", seconds: float, now_ms: float) -> None:
        """Count what one processed batch did; ``seconds`` from consumed to delivered,
        ``now_ms`` the wall-clock time of delivery (epoch ms) for end-to-end latency."""
        if result.processed:
            self.consumed.inc(result.processed)
            self.batch.observe(seconds)
            self.processing.observe(seconds / result.processed)
        if result.origins_ms:  # one per event: observed as a batch
            self.latency.observe_many([max(0.0, now_ms - origin) / 1000.0
                                       for origin in result.origins_ms])
        for model, n in result.scored.items():
            self.scored.labels(model=model).inc(n)
            self.predictions.labels(model=model).inc(n)
        for model, n in result.learned.items():
            self.learned.labels(model=model).inc(n)
        for reason, n in result.dead.items():
            self.deadletters.labels(reason=reason).inc(n)
        if result.skipped:
            self.skipped.inc(result.skipped)
        for (model, signal), n in result.alerts.items():
            self.alerts.labels(model=model, signal=signal).inc(n)
        for (model, outcome), n in result.feedback.items():
            self.feedback.labels(model=model, outcome=outcome).inc(n)
        for (model, kind), n in result.drift.items():
            if kind == "better":
                self.drift_improvements.labels(model=model).inc(n)
            elif kind == "muted":
                self.drift_muted.labels(model=model).inc(n)
        for model, n in result.promoted.items():
            self.promotions.labels(model=model).inc(n)
        for model, n in result.challenger_failed.items():
            self.challenger_failures.labels(model=model).inc(n)

    def compare(self, model: str, partition: int, metric: str, champion: float,
                challenger: float) -> None:
        """Set both roles' metric over the comparison window (non-finite: NaN).

        >>> m = Metrics()
        >>> m.compare("fraud", 0, "Accuracy", 0.8, 0.9)
        >>> (b'driftline_window_metric{metric="Accuracy",model="fraud",partition="0",'
        ...  b'role="challenger"} 0.9') in m.render()
        True
        """
        for role, value in (("champion", champion), ("challenger", challenger)):
            self.window_metric.labels(model=model, partition=str(partition), metric=metric,
                                      role=role).set(value)

    def render(self) -> bytes:
        """The text exposition format of all metrics."""
        return generate_latest(self.registry)
