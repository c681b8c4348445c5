"""Issue 3 acceptance on the real broker: every event ends as exactly one prediction or
one dead letter, predictions equal River in-process to the last bit, ADWIN alerts."""

import base64
import hashlib
import random

import orjson
from river import linear_model, preprocessing

from learners.learner import class_key
from schemas.outputs import DeadLetter, DriftAlert, Prediction
from streams.sources import synthetic_events
from tests.kafka_tools import consume, create_topic, produce

TWO_MIB = 2 * 1024 * 1024


def malformed_messages() -> list[tuple[bytes | None, str]]:
    """(payload, expected error type) for each kind of bad input."""
    ok = {"event_id": "m", "model": "default"}
    return [
        (b"not json at all", "invalid_json"),
        (b"[1, 2, 3]", "invalid_event"),
        (b'{"event_id": "only-an-id"}', "invalid_event"),
        (b'{"event_id": "n", "model": "default", "features": {"x0": NaN}}', "invalid_event"),
        (b'{"event_id": "i", "model": "default", "features": {"x0": 1e400}}', "invalid_event"),
        (b'{"event_id": 5, "model": "default", "features": [1, 2]}', "invalid_event"),
        (orjson.dumps({**ok, "model": "no-such-model", "features": {"x0": 1.0}}),
         "unknown_model"),
        (orjson.dumps({**ok, "features": {"x0": 1.0}, "pad": "a" * TWO_MIB}), "too_large"),
        (b'{"event_id": "\xff\xfe", "model": "default", "features": {"x0": 1}}',
         "invalid_encoding"),
        (b"", "invalid_json"),
        (None, "tombstone"),
        (orjson.dumps({**ok, "features": {}}), "invalid_event"),
        (orjson.dumps({**ok, "features": {f"f{i}": 1 for i in range(10_001)}}),
         "invalid_event"),
        (orjson.dumps({**ok, "event_id": "e" * 129, "features": {"x0": 1}}), "invalid_event"),
        (orjson.dumps({**ok, "features": {"x0": "text", "x1": 1.0, "x2": 2.0}}), "model_error"),
    ]


def test_every_event_is_one_prediction_or_one_dead_letter(kafka, topic_prefix, start_worker):
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=3)
    valid = list(synthetic_events("sea", n=20_000, drift_at=10_000, seed=7, model="default"))
    kinds = malformed_messages()
    rng = random.Random(3)
    bad_slots = set(rng.sample(range(20_200), 200))
    messages: list[tuple[bytes | None, bytes | None]] = []
    expected_dead: dict[bytes, tuple[bytes | None, str]] = {}
    events = iter(valid)
    for slot in range(20_200):
        if slot in bad_slots:
            payload, error_type = kinds[len(expected_dead) % len(kinds)]
            key = f"bad-{len(expected_dead)}".encode()
            expected_dead[key] = (payload, error_type)
            messages.append((key, payload))
        else:
            event = next(events)
            messages.append((event["event_id"].encode(), orjson.dumps(event)))
    landed = produce(kafka.bootstrap, topic, messages)
    worker = start_worker()

    predictions = consume(kafka.bootstrap, f"{topic_prefix}predictions", 20_000, timeout=180)
    dead = consume(kafka.bootstrap, f"{topic_prefix}deadletter", 200, timeout=60)

    assert worker.alive(), worker.log()[-2000:]
    assert len(predictions) == 20_000
    assert len(dead) == 200
    # Dead letters: exactly the payload sent (or its prefix, length and hash above the limit).
    by_key = {}
    for record in dead:
        letter = DeadLetter.model_validate_json(record.value)
        by_key[letter.key.encode()] = letter
        assert record.key == letter.key.encode()
    assert set(by_key) == set(expected_dead)
    for key, (payload, error_type) in expected_dead.items():
        letter = by_key[key]
        assert letter.error.type == error_type, (key, letter.error)
        assert letter.topic == topic
        if payload is None:
            assert letter.payload is None
            continue
        limit = 512 * 1024
        sent = payload[:limit]
        got = (base64.b64decode(letter.payload) if letter.payload_encoding == "base64"
               else letter.payload.encode())
        assert got == sent
        assert letter.payload_truncated is (len(payload) > limit)
        if letter.payload_truncated:
            assert letter.payload_length == len(payload)
            assert letter.payload_sha256 == hashlib.sha256(payload).hexdigest()
    # Predictions: one per valid event, equal to River in-process per partition.
    got = {}
    for record in predictions:
        p = Prediction.model_validate_json(record.value)
        assert record.key == p.event_id.encode()
        got[(p.partition, p.offset)] = p
    assert len(got) == 20_000
    by_partition: dict[int, list[tuple[int, dict]]] = {}
    for (key, value), meta in zip(messages, landed, strict=True):
        if not key.startswith(b"bad-"):
            by_partition.setdefault(meta.partition, []).append((meta.offset, orjson.loads(value)))
    assert len(by_partition) == 3
    for partition, items in by_partition.items():
        model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
        for learned, (offset, event) in enumerate(sorted(items, key=lambda i: i[0])):
            x, y = event["features"], event["label"]
            proba = model.predict_proba_one(x)
            expected_prediction = model.predict_one(x)
            model.learn_one(x, y)
            p = got[(partition, offset)]
            assert p.event_id == event["event_id"]
            assert p.scores == {class_key(c): v for c, v in proba.items()}
            assert p.prediction == expected_prediction
            assert p.model_version == learned
            assert p.learned is True


MODELS_TOML = """
[models.none]
task = "classification"
pipeline = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"
[models.none.drift]
on_drift = "none"

[models.reset]
task = "classification"
pipeline = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"
[models.reset.drift]
on_drift = "reset"

[models.calm]
task = "classification"
pipeline = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"
"""


def test_adwin_alerts_once_after_drift_and_reset_recovers_faster(
        kafka, topic_prefix, start_worker, tmp_path):
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=1)
    streams = {
        "none": list(synthetic_events("sea", 20_000, drift_at=10_000, seed=42, model="none")),
        "reset": list(synthetic_events("sea", 20_000, drift_at=10_000, seed=42, model="reset")),
        "calm": list(synthetic_events("sea", 10_000, drift_at=None, seed=5, model="calm")),
    }
    messages = []
    for i in range(20_000):
        for name, events in streams.items():
            if i < len(events):
                event = {**events[i], "event_id": f"{name}-{i}"}
                messages.append((event["event_id"].encode(), orjson.dumps(event)))
    produce(kafka.bootstrap, topic, messages)
    models = tmp_path / "models.toml"
    models.write_text(MODELS_TOML)
    start_worker(DRIFTLINE_MODELS=str(models))

    predictions = consume(kafka.bootstrap, f"{topic_prefix}predictions", 50_000, timeout=240)
    alerts = [DriftAlert.model_validate_json(r.value)
              for r in consume(kafka.bootstrap, f"{topic_prefix}alerts", 2, timeout=30)]

    assert sorted(a.model for a in alerts) == ["none", "reset"]  # one per change; none on calm
    delays = {}
    for alert in alerts:
        index = int(alert.event_id.split("-")[1])
        delays[alert.model] = index - 10_000
        assert 0 <= index - 10_000 <= 1_000  # ADWIN's detection + 400 to confirm
        assert alert.mean_after > alert.mean_before
        assert alert.signal == "error" and alert.detector == "ADWIN" and alert.delta == 0.002
        assert alert.action == alert.model
    correct = {"none": 0, "reset": 0}
    labels = {f"{name}-{i}": e["label"] for name, es in streams.items() for i, e in enumerate(es)}
    for record in predictions:
        p = Prediction.model_validate_json(record.value)
        model, index = p.event_id.split("-")
        if model in correct and 10_000 <= int(index) < 12_000:
            correct[model] += p.prediction == labels[p.event_id]
    accuracy = {m: c / 2000 for m, c in correct.items()}
    print(f"\nalert delay after drift: {delays}; accuracy over 2000 events after the drift: "
          f"{accuracy}")
    assert accuracy["reset"] > accuracy["none"]
