"""Drift incidents on Kafka: a Faust agent over ``<prefix>alerts`` with Faust tables.

Alerts are keyed by model, so all alerts of one model land on one partition of
the alerts topic and are handled by one agent, in order. The agent keeps each
model's open incidents in a table (changelog topic
``<app id>-incidents-changelog``, so they survive restarts and move with the
partition on a rebalance), merges each alert with :func:`learners.incidents.absorb`
and publishes the new or grown incident on ``<prefix>incidents`` keyed by model,
waiting for the broker's acknowledgement before it takes the next alert.

Delivery: at-least-once, not left to Faust's offset bookkeeping. Faust acks an
alert when the agent moves past it and commits acked offsets after flushing its
producer, but around a rebalance it can hand the agent later alerts without the
earlier ones, and ack or commit records the agent never saw (measured: gaps of 15
to 65 alerts per partition; see docs/architecture.md). So the agent also records,
in a second table (``incidents-progress``, same partitioning), the last alerts
offset it handled per partition, and:

* when it is handed alert ``o`` of a partition whose last handled offset is
  ``l < o - 1`` (or that has none yet), it first reads ``[l + 1, o)`` (or the
  partition from its start) itself with a plain consumer and absorbs those
  alerts in order (:func:`read_range`);
* every :data:`WATCH_INTERVAL_S` seconds a timer compares each of
  its alerts partitions' end offset with the progress; a partition behind and not
  moving for a whole interval is sought back to ``l + 1`` so Faust delivers the
  missed alerts again.

Absorbing is idempotent (an alert already in its incident changes nothing) and
an incident's id is derived from the model and its first alert's (partition,
offset), so re-reads and replays after a crash publish at most a duplicate
message with the same id, never a new id for the same alerts; no alert is left
out. ``concurrency`` stays 1 (faust-streaming issue 606: more can lose messages)
and ``exactly_once`` is not used.
"""

import logging
from typing import Any

import faust
import orjson
from aiokafka import TopicPartition
from pydantic import ValidationError

from learners.incidents import absorb
from learners.registry import ModelRegistry
from schemas import constants
from schemas.models_file import DriftSpec
from schemas.outputs import DriftAlert
from schemas.settings import Settings
from streams.kafka_clients import make_reader
from streams.metrics import Metrics
from streams.processor import utc_now

log = logging.getLogger(__name__)
_DEFAULT_WINDOW_S = DriftSpec().incident_window
#: Seconds between two checks of the alerts partitions' end offsets against the progress.
WATCH_INTERVAL_S = 5.0


def parse_alert(value: bytes | None, record_ms: float | None) -> dict[str, Any] | None:
    """A published alert (validated as a :class:`DriftAlert`) as a dict with an
    ``event_time`` (epoch ms), or None when it is not one (a tombstone, not JSON, not an
    alert): logged in one line and skipped, never a crash of the agent.

    >>> alert = parse_alert(b'{"model": "m", "partition": 1, "signal": "error", '
    ...     b'"detector": "ADWIN", "delta": 0.002, "offset": 5, "event_id": "e", "n_seen": 9, '
    ...     b'"mean_before": 0.1, "mean_after": 0.4, "width": 9, "at": "t", "action": "none"}',
    ...     7.0)
    >>> alert["partition"], alert["offset"], alert["event_time"]
    (1, 5, 7)
    >>> parse_alert(None, 7.0) is None, parse_alert(b'{"model": 1}', 7.0) is None
    (True, True)
    """
    if value is None:
        return None
    try:
        alert = DriftAlert.model_validate_json(value).model_dump()
    except ValidationError as exc:
        log.warning("skipped a message on the alerts topic that is not an alert (%d errors)",
                    exc.error_count())
        return None
    if alert["event_time"] is None:  # alerts written before event_time existed
        alert["event_time"] = int(record_ms or 0)
    return alert


async def read_range(settings: Settings, topic: str, partition: int, start: int | None,
                     stop: int) -> list[tuple[bytes | None, float | None, int]]:
    """The records of ``topic``'s ``partition`` from ``start`` (None: its first retained
    record) up to, not including, offset ``stop``, as ``(value, record time in ms,
    offset)``; read with a plain consumer outside any group (nothing committed).
    Records gone to retention are not there to read: the first one read may lie after
    ``start``."""
    tp = TopicPartition(topic, partition)
    reader = make_reader(settings, auto_offset_reset="earliest")
    await reader.start()
    out: list[tuple[bytes | None, float | None, int]] = []
    try:
        reader.assign([tp])
        if start is None:
            await reader.seek_to_beginning(tp)
        else:
            reader.seek(tp, start)
        while await reader.position(tp) < stop:
            batch = await reader.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                if record.offset >= stop:
                    break
                out.append((record.value, float(record.timestamp), record.offset))
    finally:
        await reader.stop()
    return out


def install(app: faust.App, settings: Settings, registry: ModelRegistry,
            metrics: Metrics) -> faust.types.AgentT:  # type: ignore[type-arg]
    """Register the incidents tables, agent and watchdog timer on ``app``; return the
    agent."""
    alerts_name = settings.topic(constants.ALERTS)
    alerts = app.topic(alerts_name, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    incidents_topic = app.topic(settings.topic(constants.INCIDENTS), key_type=bytes,
                                value_type=bytes, key_serializer="raw",
                                value_serializer="raw",
                                partitions=settings.topic_partitions)
    schema = faust.Schema(key_type=str, key_serializer="json", value_serializer="json")
    table = app.Table("incidents", default=None, partitions=settings.topic_partitions,
                      schema=schema)
    # The last alerts offset handled, per alerts partition (key: the partition number).
    progress = app.Table("incidents-progress", default=None,
                         partitions=settings.topic_partitions, schema=schema)
    windows = {name: spec.drift.incident_window * 1000.0
               for name, spec in registry.config.models.items()}

    async def handle(value: bytes | None, record_ms: float | None) -> None:
        alert = parse_alert(value, record_ms)
        if alert is None:
            return
        model = str(alert["model"])
        kept, changed = absorb(table.get(model) or [], alert,
                               windows.get(model, _DEFAULT_WINDOW_S * 1000.0))
        if changed is None:
            return
        table[model] = kept
        body = orjson.dumps({**changed, "published_at": utc_now()})
        sent = await incidents_topic.send(key=model.encode(), value=body)
        await sent  # acknowledged before this alert is acked (and later committed)
        if changed["version"] == 1:
            metrics.incidents.labels(model=model).inc()
        metrics.incident_updates.labels(model=model).inc()
        metrics.incident_partitions.labels(model=model).set(len(changed["partitions"]))
        log.warning("drift incident %s v%d: partitions %s", changed["incident_id"],
                    changed["version"], changed["partitions"], extra={"model": model})

    async def roll(stream: faust.StreamT) -> None:  # type: ignore[type-arg]
        await incidents_topic.maybe_declare()
        async for event in stream.events():
            message = event.message
            last = progress.get(str(message.partition))
            if last is None or message.offset > last + 1:
                start = None if last is None else last + 1
                missed = await read_range(settings, alerts_name, message.partition, start,
                                          message.offset)
                if missed:
                    log.warning("alerts partition %d: handling %d alerts at offsets %d-%d "
                                "the consumer skipped", message.partition, len(missed),
                                missed[0][2], missed[-1][2])
                for value, record_ms, _ in missed:
                    await handle(value, record_ms)
            await handle(event.value,
                         message.timestamp * 1000.0 if message.timestamp else None)
            if last is None or message.offset > last:
                progress[str(message.partition)] = message.offset

    behind: dict[int, int | None] = {}  # partition -> progress seen behind at the last tick

    async def watch() -> None:
        """Seek an alerts partition back when its end lies past the progress and the
        progress has not moved for a whole interval (alerts skipped at the tail)."""
        if app.rebalancing:
            behind.clear()
            return
        try:
            await catch_up()
        except Exception as exc:  # a timer that raises would stop the worker
            log.warning("incidents watchdog: %s: %s (next check in %.0f s)",
                        type(exc).__name__, exc, WATCH_INTERVAL_S)

    async def catch_up() -> None:
        mine = [tp for tp in app.consumer.assignment() if tp.topic == alerts_name]
        ends = await app.consumer.highwaters(*mine) if mine else {}
        for tp in mine:
            last = progress.get(str(tp.partition))
            start = -1 if last is None else last
            end = ends.get(tp)
            if end is None or end <= start + 1:
                behind.pop(tp.partition, None)
            elif tp.partition in behind and behind[tp.partition] == last:
                log.warning("alerts partition %d: end offset %d, last handled %s for %.0f s; "
                            "reading again from there", tp.partition, end, last,
                            WATCH_INTERVAL_S)
                if last is None:
                    (first,) = (await app.consumer.earliest_offsets(tp)).values()
                    await app.consumer.seek(tp, first)
                else:
                    await app.consumer.seek(tp, last + 1)
                behind.pop(tp.partition, None)
            else:
                behind[tp.partition] = last

    app.timer(interval=WATCH_INTERVAL_S)(watch)
    return app.agent(alerts, name="incidents", concurrency=1)(roll)
