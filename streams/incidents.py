"""Drift incidents on Kafka: a Faust agent over ``<prefix>alerts`` with a Faust table.

Alerts are keyed by model, so all alerts of one model land on one partition of
the alerts topic and are handled by one agent, in order. The agent keeps each
model's open incidents in a table (changelog topic
``<app id>-incidents-changelog``, so they survive restarts and move with the
partition on a rebalance), merges each alert with :func:`learners.incidents.absorb`
and publishes the new or grown incident on ``<prefix>incidents`` keyed by model,
waiting for the broker's acknowledgement before it takes the next alert.

Delivery: at-least-once. Faust acks an alert when the agent moves past it and
commits only acked offsets, after flushing its producer (so the table's
changelog write is durable first). After a crash, alerts since the last commit
are handled again: ones already in an incident change nothing; ones whose
publication was lost are published again — with the same id, derived from the
model and the first alert's (partition, offset). ``concurrency`` stays 1
(faust-streaming issue 606: more can lose messages) and ``exactly_once`` is not
used.
"""

import logging
from typing import Any

import faust
import orjson
from pydantic import ValidationError

from learners.incidents import absorb
from learners.registry import ModelRegistry
from schemas import constants
from schemas.models_file import DriftSpec
from schemas.outputs import DriftAlert
from schemas.settings import Settings
from streams.metrics import Metrics
from streams.processor import utc_now

log = logging.getLogger(__name__)
_DEFAULT_WINDOW_S = DriftSpec().incident_window


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


def install(app: faust.App, settings: Settings, registry: ModelRegistry,
            metrics: Metrics) -> faust.types.AgentT:  # type: ignore[type-arg]
    """Register the incidents table and agent on ``app``; return the agent."""
    alerts = app.topic(settings.topic(constants.ALERTS), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    incidents_topic = app.topic(settings.topic(constants.INCIDENTS), key_type=bytes,
                                value_type=bytes, key_serializer="raw",
                                value_serializer="raw",
                                partitions=settings.topic_partitions)
    table = app.Table("incidents", default=None, partitions=settings.topic_partitions,
                      schema=faust.Schema(key_type=str, key_serializer="json",
                                          value_serializer="json"))
    windows = {name: spec.drift.incident_window * 1000.0
               for name, spec in registry.config.models.items()}

    async def roll(stream: faust.StreamT) -> None:  # type: ignore[type-arg]
        await incidents_topic.maybe_declare()
        async for event in stream.events():
            record_ms = event.message.timestamp * 1000.0 if event.message.timestamp else None
            alert = parse_alert(event.value, record_ms)
            if alert is None:
                continue
            model = str(alert["model"])
            kept, changed = absorb(table.get(model) or [], alert,
                                   windows.get(model, _DEFAULT_WINDOW_S * 1000.0))
            if changed is None:
                continue
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

    return app.agent(alerts, name="incidents", concurrency=1)(roll)
