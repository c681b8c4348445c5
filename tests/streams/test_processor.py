"""The processor without Kafka: one output per record, in order, nothing lost."""

import orjson
import pytest

from learners.registry import ModelRegistry
from schemas.models_file import ModelsConfig
from schemas.outputs import DeadLetter, Prediction
from schemas.settings import Settings
from streams.processor import EventProcessor
from streams.records import Record

MODELS = ModelsConfig.from_toml("""
[models.clf]
task = "classification"
pipeline = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"
[models.reg]
task = "regression"
pipeline = "preprocessing.StandardScaler() | linear_model.LinearRegression()"
[models.odd]
task = "anomaly"
pipeline = "anomaly.HalfSpaceTrees(seed=1)"
""")


@pytest.fixture
def processor():
    proc = EventProcessor(Settings(topic_prefix="p."), ModelRegistry(MODELS, cooldown=10))
    for partition in (0, 1):
        proc.partition(partition)  # assigned and started fresh
    return proc


def rec(offset, value, partition=0, key=b"k"):
    raw = value if value is None or isinstance(value, bytes) else orjson.dumps(value)
    return Record("p.events", partition, offset, key, raw, None)


def event(i, model="clf", label=True, **features):
    return {"event_id": f"e{i}", "model": model, "features": features or {"x": float(i)},
            "label": label}


def test_one_output_per_record_in_order(processor):
    records = [rec(0, event(0)), rec(1, b"{"), rec(2, None), rec(3, event(3, model="nope")),
               rec(4, event(4, model="reg", label=2.5)), rec(5, event(5, model="odd", label=None))]
    out = processor.process(records, at="T")
    assert [o.topic for o in out] == ["p.predictions", "p.deadletter", "p.deadletter",
                                      "p.deadletter", "p.predictions", "p.predictions"]
    errors = [DeadLetter.model_validate_json(o.value).error.type for o in out[1:4]]
    assert errors == ["invalid_json", "tombstone", "unknown_model"]
    reg = Prediction.model_validate_json(out[4].value)
    assert reg.scores is None and reg.learned and reg.model_version == 0
    odd = Prediction.model_validate_json(out[5].value)
    assert odd.learned and isinstance(odd.prediction, int | float)


def test_replayed_offsets_are_skipped(processor):
    processor.process([rec(0, event(0)), rec(1, event(1))])
    result = processor.process_batch([rec(1, event(1)), rec(2, event(2))])
    out = result.outputs
    assert len(out) == 1 and Prediction.model_validate_json(out[0].value).offset == 2
    assert (result.skipped, result.processed, result.last_offsets) == (1, 2, {0: 2})
    assert processor.partition(0).learner("clf").n_learned == 3


def test_partitions_learn_independently(processor):
    processor.process([rec(0, event(0), partition=0), rec(0, event(1), partition=1),
                       rec(1, event(2), partition=1)])
    assert processor.partition(0).learner("clf").n_learned == 1
    assert processor.partition(1).learner("clf").n_learned == 2


def test_unlabelled_events_are_scored_not_learned(processor):
    out = processor.process([rec(0, event(0, label=None)), rec(1, event(1, label=None))])
    assert [Prediction.model_validate_json(o.value).learned for o in out] == [False, False]
    assert processor.partition(0).learner("clf").n_learned == 0


def test_null_features_are_missing_values(processor):
    out = processor.process([rec(0, event(0, x=1.0, y=None))])
    assert Prediction.model_validate_json(out[0].value).learned


def test_model_errors_leave_the_learner_untouched(processor):
    out = processor.process([rec(0, event(0, x="text"))])
    letter = DeadLetter.model_validate_json(out[0].value)
    assert letter.error.type == "model_error" and "TypeError" in letter.error.message
    assert processor.partition(0).learner("clf").n_learned == 0


def test_regression_needs_a_numeric_label(processor):
    out = processor.process([rec(0, event(0, model="reg", label="big")),
                             rec(1, event(1, model="reg", label=True))])
    assert [DeadLetter.model_validate_json(o.value).error.type for o in out] == [
        "invalid_label", "invalid_label"]


def test_validation_details_name_the_field(processor):
    out = processor.process([rec(0, {"event_id": "e", "model": "clf", "features": {"x": "a"},
                                     "label": [1]})])
    letter = DeadLetter.model_validate_json(out[0].value)
    assert letter.error.type == "invalid_event"
    assert any(d["loc"].startswith("label") for d in letter.error.details)


def test_not_utf8_payload_is_base64(processor):
    out = processor.process([rec(0, b"\xff\xfe{}", key=b"\xff")])
    letter = DeadLetter.model_validate_json(out[0].value)
    assert letter.error.type == "invalid_encoding"
    assert (letter.payload, letter.payload_encoding) == ("//57fQ==", "base64")
    assert (letter.key, letter.key_encoding) == ("/w==", "base64")


def test_alert_only_when_error_rises():
    settings = Settings(topic_prefix="p.")
    signals = []
    processor = EventProcessor(settings, ModelRegistry(MODELS, cooldown=100),
                               on_signal=lambda m, p, s: signals.append(s.kind))
    processor.partition(0)
    records = [rec(i, event(i, x=float(i % 7), label=(i % 7 > 3) == (i < 3000)))
               for i in range(6000)]  # the concept flips at 3000
    result = processor.process_batch(records)
    alerts = [orjson.loads(o.value) for o in result.outputs if o.topic == "p.alerts"]
    assert signals.count("worse") == len(alerts) >= 1
    assert result.alerts == {("clf", "error"): len(alerts)}
    assert sum(n for (_, kind), n in result.drift.items() if kind == "worse") == len(alerts)
    assert all(a["mean_after"] > a["mean_before"] and a["offset"] >= 3000 for a in alerts)
    assert {a["topic"] for a in alerts} == {"p.events"}  # the labels came with the events


def test_latency_origin_is_the_event_timestamp_else_the_record_time(processor):
    with_time = {**event(0), "timestamp": 1_700_000_000_000}
    records = [rec(0, with_time),
               Record("p.events", 0, 1, b"k", orjson.dumps(event(1)), 1_700_000_000_042),
               Record("p.events", 0, 2, b"k", orjson.dumps(event(2)), 42), rec(3, b"bad")]
    result = processor.process_batch(records)
    # a record time of 42 ms (1970) is implausible: left out of the latency metric
    assert result.origins_ms == (1_700_000_000_000.0, 1_700_000_000_042)
    assert (result.scored, result.learned, result.dead) == (
        {"clf": 3}, {"clf": 3}, {"invalid_json": 1})


def test_a_label_the_model_cannot_take_touches_nothing(processor):
    out = processor.process([rec(0, event(0, label="yes")), rec(1, event(1, label=2))])
    assert [DeadLetter.model_validate_json(o.value).error.type for o in out] == [
        "invalid_label", "invalid_label"]
    learner = processor.partition(0).learner("clf")
    assert (learner.n_scored, learner.n_learned) == (0, 0)
    assert learner.model["StandardScaler"].counts == {}


def test_a_deadline_stops_the_batch_after_the_record_during_which_it_passed(processor):
    records = [rec(i, event(i)) for i in range(5)]
    result = processor.process_batch(records, deadline=0.0)  # long passed
    assert (result.processed, result.last_offsets, len(result.outputs)) == (1, {0: 0}, 1)
    rest = processor.process_batch(records[result.processed:])
    assert (rest.processed, rest.last_offsets) == (4, {0: 4})
    assert processor.partition(0).learner("clf").n_learned == 5


def test_records_of_a_partition_not_active_here_are_refused(processor):
    processor.partitions.revoke(1)
    with pytest.raises(KeyError, match="partition 1 is not active"):
        processor.process_batch([rec(0, event(0), partition=1)])


def test_schema_error_count_is_spelled_singular_or_plural(processor):
    one = processor.process([rec(0, {"event_id": "e", "model": "clf"})])
    two = processor.process([rec(1, {"model": "clf"})])
    messages = [DeadLetter.model_validate_json(o[0].value).error.message for o in (one, two)]
    assert messages == ["event does not match the schema (1 error)",
                        "event does not match the schema (2 errors)"]
