"""Turn consumed records into predictions, dead letters and alerts. No I/O.

Every record ends as exactly one prediction or one dead letter (plus an alert
when ADWIN sees the model get worse); every failure on the way ends in
:meth:`EventProcessor._dead` and nothing else. Records of one partition must
come in offset order; records the restored state already reflects are
skipped.

>>> from learners.registry import ModelRegistry
>>> from schemas.models_file import ModelsConfig
>>> from schemas.settings import Settings
>>> from streams.records import Record
>>> proc = EventProcessor(Settings(topic_prefix="d."), ModelRegistry(ModelsConfig.default(), 100))
>>> _ = proc.partition(0)  # assigned and restored (fresh)
>>> result = proc.process_batch([Record("d.events", 0, 0, b"k",
...     b'{"event_id": "e1", "model": "default", "features": {"x": 1.0}, "label": true}', None),
...     Record("d.events", 0, 1, b"k", b"oops", None)], at="2026-01-01T00:00:00.000Z")
>>> [(o.topic, o.key) for o in result.outputs]
[('d.predictions', b'k'), ('d.deadletter', b'k')]
>>> result.scored, result.dead, result.last_offsets, result.processed
({'default': 1}, {'invalid_json': 1}, {0: 1}, 2)
"""

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from learners.challenger import Promoted, promotion_message
from learners.drift import DriftSignal, watched_signal
from learners.exceptions import EventRefused, ModelError
from learners.feature_drift import WatchSignal
from learners.feedback import FeedbackResult, Received
from learners.partition_state import Partitions, PartitionState
from learners.registry import ModelRegistry
from schemas import constants
from schemas.event import Event, plausible_ms
from schemas.feedback import Feedback
from schemas.settings import Settings
from streams.deadletter import dead_letter, deadletter_key
from streams.records import Output, Record

_MAX_DETAILS = 20
_MAX_EVENT_BYTES, _MAX_KEY_BYTES = constants.MAX_EVENT_BYTES, constants.MAX_KEY_BYTES
_tuple_new = tuple.__new__
log = logging.getLogger(__name__)


def _ms(origin: float | None, at: str) -> int:
    """An alert's event time, epoch ms: the event's (else its record's), else ``at``."""
    if origin is None:
        return int(datetime.fromisoformat(at).timestamp() * 1000)
    return int(origin)


def utc_now() -> str:
    """The current time as RFC 3339 with milliseconds.

    >>> utc_now().endswith("+00:00")
    True
    """
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _serialise(message: dict[str, Any]) -> bytes | None:
    """``message`` as JSON (numpy scalars as numbers), or None when it cannot be."""
    try:
        return orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # orjson.JSONEncodeError: an unserialisable value
        return None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What processing a batch did; built by :meth:`EventProcessor.process_batch`.

    ``outputs`` are in publish order; ``processed`` records of the input were handled
    (the rest, if a deadline stopped the batch, must come next, in order);
    ``last_offsets`` is the last handled offset per partition. Counts are per model
    (``scored``, ``learned``), per dead-letter reason (``dead``), per (model, signal
    kind) for ADWIN detections (``drift``) and per (model, watched signal) for alerts.
    ``origins_ms`` holds each scored event's time (its ``timestamp``, else the Kafka
    record's), epoch ms, for the end-to-end latency.
    """

    outputs: list[Output]
    processed: int
    last_offsets: Mapping[int, int]
    scored: Mapping[str, int] = field(default_factory=dict)
    learned: Mapping[str, int] = field(default_factory=dict)
    dead: Mapping[str, int] = field(default_factory=dict)
    skipped: int = 0
    drift: Mapping[tuple[str, str], int] = field(default_factory=dict)
    alerts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    origins_ms: Sequence[float] = ()
    #: Per model: challengers promoted, events a challenger raised on.
    promoted: Mapping[str, int] = field(default_factory=dict)
    challenger_failed: Mapping[str, int] = field(default_factory=dict)
    #: Late labels: last handled offset per partition of the feedback topic, and
    #: (model, outcome) counts (``learners/feedback.py``).
    last_feedback_offsets: Mapping[int, int] = field(default_factory=dict)
    feedback: Mapping[tuple[str, str], int] = field(default_factory=dict)


class _Tally:
    """The mutable counts of one batch in progress (frozen into a :class:`BatchResult`)."""

    __slots__ = ("alerts", "challenger_failed", "dead", "drift", "feedback", "learned",
                 "origins_ms", "promoted", "scored", "skipped")

    def __init__(self) -> None:
        self.scored: Counter[str] = Counter()
        self.learned: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()
        self.skipped = 0
        self.drift: Counter[tuple[str, str]] = Counter()
        self.alerts: Counter[tuple[str, str]] = Counter()
        self.origins_ms: list[float] = []
        self.promoted: Counter[str] = Counter()
        self.challenger_failed: Counter[str] = Counter()
        self.feedback: Counter[tuple[str, str]] = Counter()


class EventProcessor:
    """Validate, score, learn and watch drift for batches of records.

    Parameters
    ----------
    settings
        Topic names and limits.
    registry
        The configured models.
    on_signal
        Called with (model, partition, signal) for every ADWIN detection, alert or not.
    """

    def __init__(self, settings: Settings, registry: ModelRegistry,
                 on_signal: Callable[[str, int, DriftSignal], None] | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.partitions = Partitions(registry, checkpoints=settings.checkpoints,
                                     grace=settings.feedback_grace)
        self.on_signal = on_signal
        self._predictions = settings.topic(constants.PREDICTIONS)
        self._deadletter = settings.topic(constants.DEADLETTER)
        self._alerts = settings.topic(constants.ALERTS)
        self._incidents = settings.topic(constants.INCIDENTS)
        self._feedback = settings.topic(constants.FEEDBACK)
        self._known = set(registry.names)
        self._tally = _Tally()
        self._now_ms = time.time() * 1000.0

    def partition(self, partition: int) -> PartitionState:
        """The active state of ``partition``, assigned and started fresh if this processor
        does not own it yet (for tools and tests; the consumer loop assigns and restores)."""
        state = self.partitions.active(partition)
        if state is None:
            state = self.partitions.assign(partition)
            state.restore({})
        return state

    def process(self, records: Sequence[Record], at: str | None = None) -> list[Output]:
        """Handle ``records`` in order; return what to publish, in order."""
        return self.process_batch(records, at).outputs

    def process_batch(self, records: Sequence[Record], at: str | None = None,
                      deadline: float | None = None) -> BatchResult:
        """Handle ``records`` in order (each partition's state must be active).

        With ``deadline`` (a ``time.monotonic()`` value), stop after the record during
        which it passed: ``result.processed`` tells how many were handled (at least one).

        Raises:
            KeyError: a record of a partition that is not active here (a caller bug).
        """
        at = at or utc_now()
        self._now_ms = time.time() * 1000.0  # "now" of the plausibility checks, per batch
        out: list[Output] = []
        tally = self._tally = _Tally()
        last: dict[int, int] = {}
        last_feedback: dict[int, int] = {}
        done = 0
        partition, part = None, None
        for record in records:
            if record.partition != partition:
                partition, part = record.partition, self.partitions.active(record.partition)
                if part is None:
                    raise KeyError(f"partition {partition} is not active on this worker")
            done += 1
            if record.topic == self._feedback:
                last_feedback[record.partition] = record.offset
                if record.offset <= part.fb.processed:
                    self._skip()
                    continue
                try:
                    self._one_feedback(record, part, at, out)
                except Exception as exc:
                    self._dead(record, "internal_error", f"{type(exc).__name__}: {exc}", [],
                               at, out)
                part.advance_feedback(record.offset)
                if deadline is not None and time.monotonic() >= deadline:
                    break
                continue
            last[record.partition] = record.offset
            if part.seen(record.offset):
                self._skip()
                continue
            try:
                self._one(record, part, at, out)
            except Exception as exc:
                self._dead(record, "internal_error", f"{type(exc).__name__}: {exc}", [], at, out)
            part.advance(record.offset)
            if deadline is not None and time.monotonic() >= deadline:
                break
        return BatchResult(out, done, last, dict(tally.scored), dict(tally.learned),
                           dict(tally.dead), tally.skipped, dict(tally.drift),
                           dict(tally.alerts), tuple(tally.origins_ms), dict(tally.promoted),
                           dict(tally.challenger_failed), last_feedback, dict(tally.feedback))

    def _refused_bytes(self, record: Record, at: str, out: list[Output],
                       limit: int = constants.MAX_EVENT_BYTES) -> bool:
        """Dead-letter a tombstone or an oversized key or message; True if it was one."""
        value = record.value
        if value is None:
            self._dead(record, "tombstone", "message value is null (a tombstone); an event "
                       "must be a JSON object", [], at, out)
        elif record.key is not None and len(record.key) > constants.MAX_KEY_BYTES:
            self._dead(record, "too_large", f"key is {len(record.key)} bytes; the limit is "
                       f"{constants.MAX_KEY_BYTES}", [], at, out)
        elif len(value) > limit:
            self._dead(record, "too_large", f"message is {len(value)} bytes; the limit is "
                       f"{limit}", [], at, out)
        else:
            return False
        return True

    def _one_feedback(self, record: Record, part: PartitionState, at: str,
                      out: list[Output]) -> None:
        """A record of the feedback topic: validate, then join (``learners/feedback.py``)."""
        if self._refused_bytes(record, at, out, constants.MAX_FEEDBACK_BYTES):
            return None
        assert record.value is not None
        try:
            fb = Feedback.model_validate_json(record.value)
        except ValidationError as exc:
            return self._invalid(record, exc, at, out)
        if fb.model not in self._known:
            return self._unknown_model(record, fb.model, at, out)
        clock = self._clock_ms(record)
        self._tick(part, clock, record, at, out)
        if part.feedback_seen(fb.model, record.offset):
            return self._skip()
        learner = part.learner(fb.model)  # checkpointed with the model's pending store
        try:
            learner.check_label(fb.label)
        except EventRefused as exc:
            return self._dead(record, exc.reason, f"model '{fb.model}': {exc}", [], at, out)
        received = Received(record.offset, record.key, record.value, clock)
        return self._late(part.feedback.feedback(fb.model, fb.event_id, fb.label, received),
                          part, record, at, out)

    def _unknown_model(self, record: Record, model: str, at: str, out: list[Output]) -> None:
        """Dead-letter a record (event or feedback) that names a model not configured."""
        self._dead(record, "unknown_model", f"model '{model}' is not configured; known "
                   f"models: {', '.join(sorted(self._known))}", [], at, out)

    def _tick(self, part: PartitionState, ms: int | None, record: Record, at: str,
              out: list[Output]) -> None:
        """Move the partition's event-time clock to ``ms``, ``record``'s timestamp as
        :meth:`_clock_ms` gives it (a valid record's, and only a plausible time: after 2000,
        at most a day ahead of now — one record stamped in 2286 must not expire every
        pending prediction); what that expires is an output of ``record``. Nothing to
        expire without a store (labels inline only): the clock just moves."""
        feedback = part.feedback
        if ms is None or ms <= feedback.watermark:
            return
        if feedback.stores:
            self._late(feedback.advance(ms), part, record, at, out)
        else:
            feedback.watermark = ms

    def _late(self, result: FeedbackResult, part: PartitionState, record: Record, at: str,
              out: list[Output]) -> None:
        """Apply what a feedback step decided: learn the joins in order, dead-letter the
        feedback that found no prediction, count outcomes (outputs of ``record``)."""
        tally = self._tally
        for model, held in result.unmatched:
            tally.dead["unmatched_feedback"] += 1
            why = (f"no prediction of model '{model}' for event '{held.event_id}' within the "
                   "grace time (unknown, expired or evicted)")
            if not self.registry.config.models[model].feedback_max_pending:
                why = (f"model '{model}' takes no late labels (feedback_max_pending = 0): "
                       f"the label of event '{held.event_id}' is not learned")
            out.append(Output(self._deadletter, deadletter_key(held.key), dead_letter(
                Record(self._feedback, record.partition, held.offset, held.key, held.value,
                       None), "unmatched_feedback", why, [],
                self.settings.deadletter_max_bytes, at)))
        tally.feedback.update(result.by_model)
        for join in result.joins:
            learner = part.learner(join.model)
            entry = join.entry
            try:
                step = learner.learn_late(entry.features, join.label, *entry.scored)
            except (EventRefused, ModelError) as exc:  # the feedback is the dead letter
                reason = exc.reason if isinstance(exc, EventRefused) else "model_error"
                self._dead(Record(self._feedback, record.partition, join.feedback_offset,
                                  join.key, join.value, None), reason,
                           f"model '{join.model}' could not learn the label of event "
                           f"'{entry.event_id}': {exc}", [], at, out)
                continue
            if step.learned:
                tally.learned[join.model] += 1
            if step.signal is not None:
                self._signal(join.model, entry.event_id, record, learner, step.signal,
                             step.reset, at, out)
            if step.challenger_failed:
                tally.challenger_failed[join.model] += 1
            if step.promoted is not None:  # named by the labelled event's own offset
                out.append(self._promotion(join.model, entry.event_id, record.partition,
                                           entry.offset, step.promoted, at))
        return None

    def _one(self, record: Record, part: PartitionState, at: str, out: list[Output]) -> None:
        value, key = record.value, record.key
        if value is None or len(value) > _MAX_EVENT_BYTES or (
                key is not None and len(key) > _MAX_KEY_BYTES):
            self._refused_bytes(record, at, out)
            return None
        try:
            event = Event.model_validate_json(value)
        except ValidationError as exc:
            return self._invalid(record, exc, at, out)
        # each read of a pydantic model's field is a slow attribute look-up (BaseModel has
        # __getattr__, which rules out CPython's specialised reads): once per event
        model, features, label = event.model, event.features, event.label
        if model not in self._known:
            return self._unknown_model(record, model, at, out)
        clock = self._clock_ms(record)
        self._tick(part, clock, record, at, out)
        offset = record.offset
        if part.model_seen(model, offset):
            return self._skip()
        learner = part.learner(model)
        if None in features.values():
            features = {k: v for k, v in features.items() if v is not None}
        try:
            step = learner.step(features, label)
        except EventRefused as exc:  # checked before the model was touched
            return self._dead(record, exc.reason, f"model '{model}': {exc}", [], at, out)
        except ModelError as exc:  # the learner is as it was (or restarted: unhealthy)
            self._dead(record, "model_error", str(exc), [], at, out)
            if exc.unhealthy is not None:
                out.append(self._unhealthy(event, record, exc.unhealthy, at))
            return None
        except Exception as exc:  # the model's own error is the dead letter's reason
            return self._dead(record, "model_error", f"{type(exc).__name__}: {exc}", [], at, out)
        event_id = event.event_id
        body = {
            "event_id": event_id, "model": model, "prediction": step.prediction,
            "scores": step.scores, "model_version": step.version, "learned": step.learned,
            "partition": record.partition, "offset": offset, "scored_at": at,
        }
        if step.generation is not None:  # a model with a challenger: who served it
            body["generation"] = step.generation
        prediction = _serialise(body)
        learned = " (the model learned the event)" if step.learned else ""
        tally = self._tally
        if event.timestamp is None:  # the record's time: plausible if it is the clock's
            origin, plausible = record.timestamp_ms, clock is not None
        else:
            origin = event.timestamp_ms
            plausible = origin is not None and plausible_ms(origin, self._now_ms)
        if prediction is None:
            self._dead(record, "model_error", f"the prediction cannot be serialised as JSON"
                       f"{learned}", [], at, out)
        elif len(prediction) > self.settings.output_max_bytes:
            self._dead(record, "output_too_large", f"the prediction is {len(prediction)} "
                       f"bytes; the limit is {self.settings.output_max_bytes}{learned}",
                       [], at, out)
        else:
            if plausible:
                tally.origins_ms.append(origin)
            tally.scored[model] += 1
            # what Output(...) does, without its Python-level __new__
            out.append(_tuple_new(Output, (self._predictions, key, prediction)))
            if label is None and learner.spec.feedback_max_pending:
                # kept for its late label (learners/feedback.py)
                self._late(part.feedback.scored(
                    model, event_id, offset, features,
                    (step.prediction, step.proba), clock), part, record, at, out)
        if step.learned:
            tally.learned[model] += 1
        if step.unhealthy is not None:
            out.append(self._unhealthy(event, record, step.unhealthy, at))
        if step.signal is not None:
            self._signal(model, event_id, record, learner, step.signal,
                         step.reset, at, out, origin)
        if step.watched:
            out.extend(self._watched(event, record, step.watched, at, origin))
        if step.challenger_failed:
            tally.challenger_failed[model] += 1
        if step.promoted is not None:
            out.append(self._promotion(model, event_id, record.partition,
                                       offset, step.promoted, at))
        return None

    def _promotion(self, model: str, event_id: str, partition: int, offset: int,
                   promoted: Promoted, at: str) -> Output:
        """The challenger now serves (model, partition), promoted after the event at
        ``offset`` of the events topic: say so on ``<prefix>incidents``."""
        self._tally.promoted[model] += 1
        spec = self.registry.config.models[model]
        assert spec.challenger is not None
        log.warning("challenger promoted: %s %.4f vs champion %.4f over %d events",
                    promoted.metric, promoted.challenger, promoted.champion, promoted.window,
                    extra={"model": model, "partition": partition, "offset": offset})
        return Output(self._incidents, model.encode(), orjson.dumps(promotion_message(
            model, partition, offset, event_id, promoted, spec.challenger, spec.pipeline, at)))

    def _signal(self, model: str, event_id: str, record: Record, learner: Any,
                signal: DriftSignal, reset: bool, at: str, out: list[Output],
                origin: float | None = None) -> None:
        """Count an ADWIN detection of ``model`` (event ``event_id``, learned while
        handling ``record``); a rise of the error is an alert."""
        tally = self._tally
        tally.drift[model, signal.kind] += 1
        if self.on_signal is not None:
            self.on_signal(model, record.partition, signal)
        if signal.kind != "worse":
            return
        tally.alerts[model, watched_signal(learner.task)] += 1
        learner.last_alert = {"topic": record.topic, "offset": record.offset,
                              "event_id": event_id, "at": at}
        log.warning("drift alert: error %.4f -> %.4f, action %s", signal.mean_before,
                    signal.mean_after, "reset" if reset else "none",
                    extra={"model": model, "topic": record.topic, "partition": record.partition,
                           "offset": record.offset})
        out.append(self._alert(model, event_id, record, learner.task, signal, reset, at,
                               origin))

    def _unhealthy(self, event: Event, record: Record, reason: str, at: str) -> Output:
        log.error("model unhealthy, started afresh: %s", reason,
                  extra={"model": event.model, "partition": record.partition,
                         "offset": record.offset})
        return Output(self._alerts, event.model.encode(), orjson.dumps({
            "alert": "model_unhealthy", "model": event.model, "partition": record.partition,
            "offset": record.offset, "event_id": event.event_id, "reason": reason[:500],
            "action": "fresh", "at": at,
        }))

    def _watched(self, event: Event, record: Record, signals: list[WatchSignal], at: str,
                 origin: float | None) -> list[Output]:
        """Label-free alerts (a feature's or the predictions' distribution moved)."""
        for s in signals:
            self._tally.alerts[event.model, s.signal] += 1
        return [Output(self._alerts, event.model.encode(), orjson.dumps({
            "alert": "drift", "model": event.model, "partition": record.partition,
            "signal": s.signal,
            "detector": s.detector, "delta": s.level, "offset": record.offset,
            "event_id": event.event_id,
            "n_seen": s.n_seen, "mean_before": s.mean_before, "mean_after": s.mean_after,
            "width": s.width, "at": at, "action": "none", "event_time": _ms(origin, at),
            "feature": s.feature, "before": s.before, "after": s.after,
        })) for s in signals]

    def _alert(self, model: str, event_id: str, record: Record, task: str,
               signal: DriftSignal, reset: bool, at: str, origin: float | None = None) -> Output:
        spec = self.registry.config.models[model]
        return Output(self._alerts, model.encode(), orjson.dumps({
            "alert": "drift", "model": model, "partition": record.partition,
            "signal": watched_signal(task), "detector": "ADWIN",
            "delta": spec.drift.delta, "offset": record.offset, "event_id": event_id,
            "topic": record.topic,
            "n_seen": signal.n_seen, "mean_before": signal.mean_before,
            "mean_after": signal.mean_after, "width": signal.width, "at": at,
            "action": "reset" if reset else "none", "event_time": _ms(origin, at),
        }))

    def _invalid(self, record: Record, exc: ValidationError, at: str,
                 out: list[Output]) -> None:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if errors and errors[0]["type"] == "json_invalid":
            assert record.value is not None
            try:
                record.value.decode("utf-8")
            except UnicodeDecodeError as bad:
                return self._dead(record, "invalid_encoding",
                                  f"message is not UTF-8: {bad.reason} at byte {bad.start}",
                                  [], at, out)
            return self._dead(record, "invalid_json", errors[0]["msg"], [], at, out)
        details: list[Any] = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in errors[:_MAX_DETAILS]]
        return self._dead(record, "invalid_event",
                          f"event does not match the schema ({len(errors)} error"
                          f"{'' if len(errors) == 1 else 's'})",
                          details, at, out)

    def _clock_ms(self, record: Record) -> int | None:
        """``record``'s timestamp for the late-label clock: None unless plausible (after
        2000, at most a day ahead of the batch's start; :func:`schemas.event.plausible_ms`)."""
        ms = record.timestamp_ms
        return ms if ms is not None and plausible_ms(ms, self._now_ms) else None

    def _skip(self) -> None:
        self._tally.skipped += 1

    def _dead(self, record: Record, error_type: str, message: str, details: list[Any],
              at: str, out: list[Output]) -> None:
        self._tally.dead[error_type] += 1
        log.warning("dead letter %s: %s", error_type, message[:200],
                    extra={"topic": record.topic, "partition": record.partition,
                           "offset": record.offset})
        out.append(Output(self._deadletter, deadletter_key(record.key), dead_letter(
            record, error_type, message, details, self.settings.deadletter_max_bytes, at)))

