"""Drift incidents: the per-partition alerts of one change, rolled into one. Pure logic.

An alert joins a model's incident when its event time lies within ``window_ms``
of the incident's first alert (anchored on the first, so a slow trickle of
alerts cannot stretch one incident forever); otherwise it opens a new one. The
id is derived from the model and the first alert's (partition, offset), so a
replay of the same alerts after a crash gives the same ids, and an alert that
is already in its incident (same partition, offset, signal, feature) changes
nothing — re-publication is idempotent. Incidents are plain JSON-able dicts
(they live in a Faust table and are published as they are).

>>> a = {"model": "m", "partition": 0, "offset": 70, "signal": "error", "event_time": 1_000}
>>> b = {**a, "partition": 3, "offset": 12, "event_time": 61_000}
>>> c = {**a, "partition": 1, "offset": 900, "event_time": 9_000_000}
>>> open_, first = absorb([], a, window_ms=600_000)
>>> open_, second = absorb(open_, b, window_ms=600_000)
>>> first["incident_id"] == second["incident_id"], second["partitions"], second["version"]
(True, [0, 3], 2)
>>> absorb(open_, b, window_ms=600_000)[1] is None   # a replayed alert changes nothing
True
>>> open_, third = absorb(open_, c, window_ms=600_000)
>>> third["incident_id"] != first["incident_id"], len(open_)
(True, 2)
"""

import uuid
from collections.abc import Mapping
from typing import Any

#: Incidents kept per model (the newest by first event time); older ones are closed.
KEEP = 8
#: Detections listed per incident; further alerts are counted in ``n_alerts`` only.
MAX_DETECTIONS = 256
_NAMESPACE = uuid.UUID("5f0c3a9e-7d1b-4c36-9f57-2f8a1e6b4d20")
_DETECTION_FIELDS = ("partition", "offset", "signal", "feature", "detector", "event_id",
                     "event_time", "mean_before", "mean_after")


def incident_id(model: str, first: Mapping[str, Any]) -> str:
    """The id of ``model``'s incident whose first alert is ``first`` (a detection: its
    ``partition``, ``offset``, ``signal``, ``feature`` and ``event_time``): the same alert
    always names the same incident, so a replay re-publishes under the same id, and two
    different first alerts never share one (another signal of the same event, or the same
    offset of a recreated topic at another time).

    >>> a = {"partition": 0, "offset": 70, "signal": "error", "feature": None,
    ...      "event_time": 1_000}
    >>> incident_id("m", a) == incident_id("m", dict(a)) != incident_id("m", {**a, "partition": 1})
    True
    >>> incident_id("m", a) != incident_id("m", {**a, "signal": "feature", "feature": "x"})
    True
    >>> len(incident_id("m", a))
    36
    """
    when = first.get("event_time")
    name = "\x00".join(map(str, (model, *_key(first), None if when is None else float(when))))
    return str(uuid.uuid5(_NAMESPACE, name))


def _key(detection: dict[str, Any]) -> tuple[Any, ...]:
    return (detection["partition"], detection["offset"], detection["signal"],
            detection.get("feature"))


def _detection(alert: dict[str, Any]) -> dict[str, Any]:
    return {name: alert.get(name) for name in _DETECTION_FIELDS}


def absorb(incidents: list[dict[str, Any]], alert: dict[str, Any],
           window_ms: float) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Add ``alert`` (a published drift alert, with ``event_time`` in epoch ms) to a
    model's incidents.

    An incident's ``first_event_time`` is its first alert's and stays its anchor;
    ``last_event_time`` is the latest event time among its alerts.

    Returns the model's incidents afterwards (a new list; the input is not
    changed) and the incident to publish: new or grown, or None when the alert
    was already in it.
    """
    time = alert["event_time"]
    key = _key(alert)
    home = None
    for incident in incidents:
        if any(_key(d) == key for d in incident["detections"]):
            return incidents, None
        if abs(time - incident["first_event_time"]) <= window_ms and (
                home is None or incident["first_event_time"] > home["first_event_time"]):
            home = incident
    if home is None:
        grown = {
            "incident_id": incident_id(alert["model"], alert),
            "model": alert["model"], "first_event_time": time, "last_event_time": time,
            "window_ms": window_ms, "partitions": [alert["partition"]],
            "signals": [alert["signal"]], "detections": [_detection(alert)],
            "n_alerts": 1, "version": 1,
        }
        kept = sorted([*incidents, grown], key=lambda i: i["first_event_time"])[-KEEP:]
        return kept, grown
    detections = home["detections"]
    if len(detections) < MAX_DETECTIONS:
        detections = [*detections, _detection(alert)]
    grown = {
        **home,
        "last_event_time": max(home["last_event_time"], time),
        "partitions": sorted({*home["partitions"], alert["partition"]}),
        "signals": sorted({*home["signals"], alert["signal"]}),
        "detections": detections, "n_alerts": home["n_alerts"] + 1,
        "version": home["version"] + 1,
    }
    return [grown if i is home else i for i in incidents], grown
