"""Checks shared by the crash, rebalance and Redis-outage tests: every labelled event
learned exactly once by the surviving state, every event predicted, repeats identical."""

from collections import defaultdict

import orjson
from river import linear_model, preprocessing

from learners.learner import class_key
from schemas.outputs import Prediction
from streams.sources import synthetic_events
from tests.kafka_tools import consume_until_ids, produce

PROBES_PER_PARTITION = 40


def send_probes(bootstrap: str, topic: str, partitions: int) -> dict[str, int]:
    """Unlabelled probe events at the end of each partition; returns event_id -> partition."""
    where = {}
    for partition in range(partitions):
        probes = synthetic_events("sea", PROBES_PER_PARTITION, None, seed=900 + partition,
                                  model="default")
        messages = []
        for event in probes:
            event = {**event, "event_id": f"probe-{partition}-{event['event_id']}", "label": None}
            where[event["event_id"]] = partition
            messages.append((event["event_id"].encode(), orjson.dumps(event)))
        produce(bootstrap, topic, messages, partition=partition)
    return where


def wait_for_probes(bootstrap: str, prefix: str, probes: dict[str, int],
                    timeout: float = 240) -> list[Prediction]:
    """All predictions, read once every probe has one (so everything before it has too)."""
    records = consume_until_ids(bootstrap, f"{prefix}predictions", probes, timeout)
    return [Prediction.model_validate_json(r.value) for r in records]


def assert_effectively_once(events: list[tuple[int, int, dict]], probes: dict[str, int],
                            predictions: list[Prediction]) -> dict[str, int]:
    """``events``: (partition, offset, event) of every labelled event sent.

    Returns counts for the note: predictions, distinct events, repeats.
    """
    by_position: dict[tuple[int, int], list[Prediction]] = defaultdict(list)
    for p in predictions:
        by_position[p.partition, p.offset].append(p)
    # Every event has at least one prediction, and all its repeats are identical.
    repeats = 0
    for (partition, offset, event) in events:
        seen = by_position[partition, offset]
        assert seen, f"no prediction for partition {partition} offset {offset}"
        first = seen[0].model_dump(exclude={"scored_at"})
        assert first["event_id"] == event["event_id"]
        for again in seen[1:]:
            assert again.model_dump(exclude={"scored_at"}) == first
        repeats += len(seen) - 1
    # The surviving state learned each labelled event exactly once, in order.
    per_partition: dict[int, list[tuple[int, dict]]] = defaultdict(list)
    for partition, offset, event in events:
        per_partition[partition].append((offset, event))
    probe_predictions = {p.event_id: p for p in predictions if p.event_id in probes}
    assert probe_predictions.keys() == probes.keys()
    for partition, items in per_partition.items():
        model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
        for _, event in sorted(items, key=lambda i: i[0]):
            model.learn_one(event["features"], event["label"])
        for event_id, probe_partition in probes.items():
            if probe_partition != partition:
                continue
            got = probe_predictions[event_id]
            assert got.model_version == len(items), (partition, got.model_version, len(items))
            assert got.learned is False
            x = _probe_features(event_id)
            assert got.scores == {class_key(c): v for c, v in model.predict_proba_one(x).items()}
            assert got.prediction == model.predict_one(x)
    return {"predictions": len(predictions), "events": len(events), "repeats": repeats}


def _probe_features(event_id: str) -> dict:
    _, partition, source_id = event_id.split("-", 2)
    index = int(source_id.rsplit("-", 1)[1])
    events = synthetic_events("sea", index + 1, None, seed=900 + int(partition), model="default")
    return list(events)[index]["features"]
