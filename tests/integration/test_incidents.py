"""Issue 14 on the real broker: the per-partition alerts of one change are one incident,
whatever the partitions and workers; changes far apart in event time are two; a feature
shift without labels is a published ``feature`` alert."""

import itertools
import json
import random
import signal
import urllib.request

import orjson
from river.datasets import synth

from schemas.outputs import DriftAlert, Incident
from tests.helpers import wait_for
from tests.kafka_tools import consume, consume_until, count, create_topic, produce

PARTITIONS = 6
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 50  # event time between two events of a partition
MODELS_TOML = '[models.sea]\ntask = "classification"\npipeline = "{p}"\n'.format(
    p="preprocessing.StandardScaler() | linear_model.LogisticRegression()")


def sea_segments(seed: int, lengths: list[int]) -> list[tuple[dict, bool]]:
    """SEA, its concept alternating (variant 0, 3, 0, ...) after each segment."""
    out: list[tuple[dict, bool]] = []
    for k, n in enumerate(lengths):
        gen = synth.SEA(variant=0 if k % 2 == 0 else 3, seed=seed + k)
        out += [(x, y) for x, y in itertools.islice(gen, n)]
    return out


def send(kafka, topic: str, per_partition: dict[int, list[tuple[dict, bool, int]]]) -> None:
    for partition, rows in per_partition.items():
        messages = []
        for i, (x, y, ts) in enumerate(rows):
            event = {"event_id": f"p{partition}-{i}", "model": "sea",
                     "features": {f"x{k}": v for k, v in x.items()}, "label": y,
                     "timestamp": ts}
            messages.append((event["event_id"].encode(), orjson.dumps(event)))
        produce(kafka.bootstrap, topic, messages, partition=partition)


def latest(records) -> dict[str, Incident]:
    """The latest message per incident id, as a reader keeps them."""
    out: dict[str, Incident] = {}
    for r in records:
        incident = Incident.model_validate_json(r.value)
        assert r.key == incident.model.encode()
        if incident.incident_id not in out or incident.version > out[incident.incident_id].version:
            out[incident.incident_id] = incident
    return out


def split_between(workers) -> bool:
    """Every worker ready, each with some of the events topic's partitions, all covered."""
    shares = []
    for w in workers:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{w.env['DRIFTLINE_WEB_PORT']}/ready",
                                        timeout=2) as answer:
                body = json.loads(answer.read())
        except OSError:  # not answering yet, or 503 before its partitions are restored
            return False
        if not body.get("ready"):
            return False
        shares.append(set(body["assigned"]))
    return all(shares) and set().union(*shares) == set(range(PARTITIONS))


def run_two_workers(kafka, topic_prefix, start_worker, tmp_path, per_partition) -> list:
    create_topic(kafka.bootstrap, f"{topic_prefix}events", partitions=PARTITIONS)
    models = tmp_path / "models.toml"
    models.write_text(MODELS_TOML)
    workers = [start_worker(DRIFTLINE_MODELS=str(models)) for _ in range(2)]
    # The scoring group settled (each worker ready with its share of the partitions), so
    # alerts come from both workers. The incidents agent's group is not waited for: alerts
    # may reach it while it rebalances, and none may be lost (streams.incidents).
    wait_for(lambda: split_between(workers), 120, "both workers ready with a share each")
    send(kafka, f"{topic_prefix}events", per_partition)
    total = sum(len(rows) for rows in per_partition.values())
    consume(kafka.bootstrap, f"{topic_prefix}predictions", total, timeout=240)
    alerts = [DriftAlert.model_validate_json(r.value)
              for r in consume_until(kafka.bootstrap, f"{topic_prefix}alerts",
                                     lambda rs: len(rs) >= 1, timeout=30)]
    for w in workers:
        assert w.alive(), w.log()[-3000:]
    return alerts


def test_one_drift_on_six_partitions_over_two_workers_is_one_incident(
        kafka, topic_prefix, start_worker, tmp_path):
    per_partition = {
        p: [(x, y, START_MS + i * STEP_MS)
            for i, (x, y) in enumerate(sea_segments(100 + p, [3000, 3000]))]
        for p in range(PARTITIONS)}
    run_two_workers(kafka, topic_prefix, start_worker, tmp_path, per_partition)
    # every prediction is out, so every partition alert is too (they are sent together)
    alerts = [DriftAlert.model_validate_json(r.value)
              for r in consume(kafka.bootstrap, f"{topic_prefix}alerts", 3, timeout=60)]
    alerted = {a.partition for a in alerts}
    assert len(alerted) >= 3, alerts

    def all_joined(records) -> bool:  # the agent may still be joining the last alerts
        found = latest(records)
        return bool(found) and sum(len(i.detections) for i in found.values()) >= len(alerts)
    incidents = latest(consume_until(kafka.bootstrap, f"{topic_prefix}incidents", all_joined,
                                     timeout=120))
    assert len(incidents) == 1, incidents
    (incident,) = incidents.values()
    assert incident.model == "sea" and len(incident.partitions) >= 3
    assert incident.partitions == sorted(alerted)
    first = min(alerts, key=lambda a: a.event_time or 0)
    assert {(d.partition, d.offset) for d in incident.detections} == {
        (a.partition, a.offset) for a in alerts}
    for a in alerts:  # each alert carries its event's own time, all after the drift
        assert a.event_time == START_MS + a.offset * STEP_MS
        assert a.offset >= 3000
    assert first.event_time is not None and incident.last_event_time >= first.event_time
    assert all(d.mean_after > d.mean_before for d in incident.detections)
    print(f"\none incident {incident.incident_id}: {len(alerts)} alerts, partitions "
          f"{incident.partitions}, version {incident.version}")


def test_two_drifts_far_apart_in_event_time_are_two_incidents(
        kafka, topic_prefix, start_worker, tmp_path):
    day_ms = 24 * 3600 * 1000
    per_partition = {}
    for p in range(PARTITIONS):
        rows = sea_segments(200 + p, [3000, 3000, 3000])
        per_partition[p] = [(x, y, START_MS + i * STEP_MS + (day_ms if i >= 4500 else 0))
                            for i, (x, y) in enumerate(rows)]
    run_two_workers(kafka, topic_prefix, start_worker, tmp_path, per_partition)

    # every prediction is out, so every partition alert is too (they are sent together)
    alerts = [DriftAlert.model_validate_json(r.value)
              for r in consume(kafka.bootstrap, f"{topic_prefix}alerts", 1, timeout=10)]

    def all_joined(records) -> bool:  # the agent may still be joining the last alerts
        found = latest(records)
        return len(found) >= 2 and sum(len(i.detections) for i in found.values()) >= len(
            alerts)
    found = latest(consume_until(kafka.bootstrap, f"{topic_prefix}incidents", all_joined,
                                 timeout=120))
    assert len(found) == 2, found
    early, late = sorted(found.values(), key=lambda i: i.first_event_time)
    assert late.first_event_time - early.first_event_time > day_ms / 2
    assert all(3000 <= d.offset < 4500 for d in early.detections)
    assert all(d.offset >= 6000 for d in late.detections)
    assert sum(len(i.detections) for i in found.values()) == len(alerts)
    print(f"\ntwo incidents: {[(i.incident_id[:8], i.partitions) for i in (early, late)]}")


def test_a_feature_shift_without_labels_is_a_published_feature_alert(
        kafka, topic_prefix, start_worker, tmp_path):
    create_topic(kafka.bootstrap, f"{topic_prefix}events", partitions=1)
    models = tmp_path / "models.toml"
    models.write_text(MODELS_TOML + "[models.sea.drift]\nfeatures = true\n")
    rng = random.Random(8)
    messages = []
    for i in range(6000):
        x = {f"x{k}": rng.gauss(0, 1) for k in range(10)}
        if i >= 3000:
            x["x4"] += 2.0
        event = {"event_id": f"f-{i}", "model": "sea", "features": x,
                 "timestamp": START_MS + i * STEP_MS}
        messages.append((event["event_id"].encode(), orjson.dumps(event)))
    produce(kafka.bootstrap, f"{topic_prefix}events", messages)
    worker = start_worker(DRIFTLINE_MODELS=str(models))
    try:
        consume(kafka.bootstrap, f"{topic_prefix}predictions", 6000, timeout=120)
    except AssertionError:
        raise AssertionError(worker.log()[-5000:]) from None
    alerts = [DriftAlert.model_validate_json(r.value)
              for r in consume(kafka.bootstrap, f"{topic_prefix}alerts", 1, timeout=30)]
    assert worker.alive()
    assert [(a.signal, a.feature, a.detector) for a in alerts] == [("feature", "x4", "ADWIN")]
    (alert,) = alerts
    assert 3000 <= alert.offset < 3200
    assert alert.event_time == START_MS + alert.offset * STEP_MS
    assert alert.after is not None and alert.before is not None
    assert alert.after["mean"] > alert.before["mean"] + 1
    try:
        incidents = latest(consume(kafka.bootstrap, f"{topic_prefix}incidents", 1, timeout=30))
    except AssertionError:
        raise AssertionError(worker.log()[-6000:]) from None
    (incident,) = incidents.values()
    assert incident.signals == ["feature"] and incident.detections[0].feature == "x4"


def test_a_stationary_stream_of_50000_events_without_labels_raises_no_alert(
        kafka, topic_prefix, start_worker, tmp_path):
    """The label-free watchers on the broker: 50,000 events of 10 unchanging N(0, 1)
    features, no labels, every feature watched: no alert, so no incident."""
    create_topic(kafka.bootstrap, f"{topic_prefix}events", partitions=1)
    models = tmp_path / "models.toml"
    models.write_text(MODELS_TOML + "[models.sea.drift]\nfeatures = true\n")
    rng = random.Random(9)
    n = 50_000
    messages = []
    for i in range(n):
        event = {"event_id": f"s-{i}", "model": "sea",
                 "features": {f"x{k}": rng.gauss(0, 1) for k in range(10)},
                 "timestamp": START_MS + i * STEP_MS}
        messages.append((event["event_id"].encode(), orjson.dumps(event)))
    produce(kafka.bootstrap, f"{topic_prefix}events", messages)
    worker = start_worker(DRIFTLINE_MODELS=str(models))
    try:
        consume(kafka.bootstrap, f"{topic_prefix}predictions", n, timeout=240, settle=0)
    except AssertionError:
        raise AssertionError(worker.log()[-5000:]) from None
    # Alerts go out with their batch's predictions: any would be on the topic by now.
    assert count(kafka.bootstrap, f"{topic_prefix}alerts") == 0
    assert worker.alive(), worker.log()[-3000:]
    assert "drift incident" not in worker.log()


def test_an_incident_survives_kill_9_and_later_partitions_join_it(
        kafka, topic_prefix, start_worker, tmp_path):
    """The table is restored from its changelog: alerts after a kill -9 join the incident
    opened before it (same id), and replayed alerts add nothing."""
    create_topic(kafka.bootstrap, f"{topic_prefix}events", partitions=PARTITIONS)
    models = tmp_path / "models.toml"
    models.write_text(MODELS_TOML)
    rows = {p: [(x, y, START_MS + i * STEP_MS)
                for i, (x, y) in enumerate(sea_segments(300 + p, [3000, 3000]))]
            for p in range(PARTITIONS)}
    first = start_worker(DRIFTLINE_MODELS=str(models))
    send(kafka, f"{topic_prefix}events", {p: rows[p] for p in range(3)})

    def opened(records) -> bool:
        return any(len(i.partitions) >= 2 for i in latest(records).values())
    before = latest(consume_until(kafka.bootstrap, f"{topic_prefix}incidents", opened,
                                  timeout=120))
    assert len(before) == 1
    first.stop(signal.SIGKILL)
    send(kafka, f"{topic_prefix}events", {p: rows[p] for p in range(3, PARTITIONS)})
    second = start_worker(DRIFTLINE_MODELS=str(models))
    every = {(p, o) for p in range(PARTITIONS) for o in range(len(rows[p]))}

    def positions(records) -> set[tuple[int, int]]:
        values = (orjson.loads(r.value) for r in records)
        return {(v["partition"], v["offset"]) for v in values}
    consume_until(kafka.bootstrap, f"{topic_prefix}predictions",
                  lambda rs: positions(rs) >= every, timeout=240)
    # Alerts go out with their batch's predictions: all of them are in by now.
    alerts = [DriftAlert.model_validate_json(r.value)
              for r in consume(kafka.bootstrap, f"{topic_prefix}alerts", 1, timeout=10)]
    alerted = {a.partition for a in alerts}
    assert alerted & {3, 4, 5}, alerts

    def joined(records) -> bool:
        return any(set(i.partitions) >= alerted for i in latest(records).values())
    after = latest(consume_until(kafka.bootstrap, f"{topic_prefix}incidents", joined,
                                 timeout=60))
    assert second.alive(), second.log()[-3000:]
    assert after.keys() == before.keys(), (before, after)
    (incident,) = after.values()
    assert set(incident.partitions) == {a.partition for a in alerts}
    # Replayed alerts (the scoring worker re-scores events after its last checkpoint)
    # were recognised: each (partition, offset) is listed once.
    listed = [(d.partition, d.offset) for d in incident.detections]
    assert len(listed) == len(set(listed)) == len({(a.partition, a.offset) for a in alerts})
    print(f"\nafter kill -9: incident {incident.incident_id[:8]} partitions "
          f"{incident.partitions}, {len(alerts)} alerts (with replays), version "
          f"{incident.version}")
