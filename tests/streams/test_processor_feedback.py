"""Feedback records through the processor (pure, no Kafka): validated like events,
joined to the prediction as scored, learned once, unmatched ones dead-lettered after grace."""

import orjson
from river import linear_model

from learners.registry import ModelRegistry
from schemas.models_file import ModelsConfig
from schemas.outputs import DriftAlert
from schemas.settings import Settings
from streams.logs import TextFormatter
from streams.processor import EventProcessor
from streams.records import Record

T0 = 1_767_225_600_000


def processor(**spec) -> EventProcessor:
    config = ModelsConfig.model_validate({"models": {"m": {
        "task": "classification", "pipeline": "linear_model.LogisticRegression()",
        "feedback_ttl": 10, **spec}}})
    proc = EventProcessor(Settings(topic_prefix="d.", feedback_grace=5.0),
                          ModelRegistry(config, 100))
    proc.partition(0)
    return proc


def event(offset: int, event_id: str, x: float, at: int) -> Record:
    return Record("d.events", 0, offset, event_id.encode(), orjson.dumps(
        {"event_id": event_id, "model": "m", "features": {"x": x}}), at)


def feedback(offset: int, event_id: str, label, at: int, model: str = "m") -> Record:
    return Record("d.feedback", 0, offset, event_id.encode(), orjson.dumps(
        {"event_id": event_id, "model": model, "label": label}), at)


def test_a_label_is_learned_once_from_the_features_as_scored():
    proc = processor()
    result = proc.process_batch([
        event(0, "a", 1.0, T0), event(1, "b", -1.0, T0 + 1),
        feedback(0, "a", True, T0 + 2), feedback(1, "a", True, T0 + 3),  # a repeat
        feedback(2, "b", False, T0 + 4)])
    reference = linear_model.LogisticRegression()
    reference.learn_one({"x": 1.0}, True)
    reference.learn_one({"x": -1.0}, False)
    learner = proc.partitions.get(0).learners["m"]
    assert learner.n_learned == 2
    assert learner.model.predict_proba_one({"x": 0.5}) == reference.predict_proba_one({"x": 0.5})
    assert result.feedback == {("m", "matched"): 2, ("m", "duplicate"): 1}
    assert result.learned == {"m": 2}
    assert result.last_feedback_offsets == {0: 2} and result.last_offsets == {0: 1}
    assert [o.topic for o in result.outputs] == ["d.predictions"] * 2


def test_invalid_feedback_is_a_dead_letter_with_the_usual_reasons():
    proc = processor()
    result = proc.process_batch([
        event(0, "a", 1.0, T0),
        Record("d.feedback", 0, 0, b"k", b"{not json", T0 + 1),
        feedback(1, "a", None, T0 + 2),           # no label
        feedback(2, "a", True, T0 + 3, "nope"),   # unknown model
        feedback(3, "a", "yes", T0 + 4),          # not the model's label type (bool)
        Record("d.feedback", 0, 4, b"k", None, T0 + 5)])
    reasons = [orjson.loads(o.value)["error"]["type"] for o in result.outputs
               if o.topic == "d.deadletter"]
    assert reasons == ["invalid_json", "invalid_event", "unknown_model", "invalid_label",
                       "tombstone"]
    assert proc.partitions.get(0).learners["m"].n_learned == 0
    assert proc.partitions.get(0).feedback.store("m").entries.keys() == {"a"}


def test_early_feedback_joins_its_event_and_unknown_ids_are_dead_letters_after_grace():
    proc = processor()
    first = proc.process_batch([feedback(0, "late-event", True, T0),
                                feedback(1, "ghost", False, T0 + 1),
                                event(0, "late-event", 2.0, T0 + 1_000)])
    assert first.feedback == {("m", "early"): 2, ("m", "matched"): 1}
    assert first.learned == {"m": 1}
    # 5 s of event time later (grace), the ghost is an unmatched_feedback dead letter,
    # an output of the record that moved the clock, with the original payload
    second = proc.process_batch([event(1, "c", 0.0, T0 + 6_002)])
    dead = [orjson.loads(o.value) for o in second.outputs if o.topic == "d.deadletter"]
    assert [d["error"]["type"] for d in dead] == ["unmatched_feedback"]
    assert orjson.loads(dead[0]["payload"])["event_id"] == "ghost"
    assert second.feedback == {("m", "unmatched"): 1}
    # 10 s (feedback_ttl) after it was scored, an unlabelled prediction expires
    third = proc.process_batch([event(2, "d", 0.0, T0 + 16_003)])
    assert third.feedback == {("m", "expired"): 1}


def test_late_labels_off_keeps_nothing_and_dead_letters_feedback_at_once():
    proc = processor(feedback_max_pending=0)
    result = proc.process_batch([event(0, "a", 1.0, T0), feedback(0, "a", True, T0 + 1),
                                 feedback(1, "early", True, T0 + 2)])
    assert [o.topic for o in result.outputs] == ["d.predictions", "d.deadletter",
                                                 "d.deadletter"]
    dead = [orjson.loads(o.value) for o in result.outputs[1:]]
    assert [d["error"]["type"] for d in dead] == ["unmatched_feedback"] * 2
    assert [orjson.loads(d["payload"])["event_id"] for d in dead] == ["a", "early"]
    assert all("takes no late labels (feedback_max_pending = 0)" in d["error"]["message"]
               for d in dead)
    assert result.feedback == {("m", "unmatched"): 2}
    store = proc.partitions.get(0).feedback.store("m")
    assert not store.entries and not store.early
    assert proc.partitions.get(0).learners["m"].n_learned == 0


def test_an_implausible_or_invalid_record_does_not_move_the_event_time_clock():
    proc = processor()
    proc.process_batch([event(0, "a", 1.0, T0)])
    year_2286 = 10**13
    result = proc.process_batch([
        Record("d.feedback", 0, 0, b"k", b"garbage", T0 + 3_600_000),  # invalid, an hour on
        feedback(1, "zz", True, year_2286),                            # valid, implausible time
        Record("d.events", 0, 1, b"k", b"{not json", T0 + 3_600_000)])
    assert result.feedback == {("m", "early"): 1}  # nothing expired
    store = proc.partitions.get(0).feedback.store("m")
    assert store.entries.keys() == {"a"}
    assert proc.partitions.get(0).feedback.watermark == T0
    late = proc.process_batch([feedback(2, "a", True, T0 + 1_000)])
    assert late.feedback == {("m", "matched"): 1} and late.learned == {"m": 1}


def test_a_label_refused_when_joined_is_a_dead_letter_of_its_feedback():
    proc = processor(pipeline="preprocessing.StandardScaler() | "
                              "linear_model.LogisticRegression()")
    proc.process_batch([event(0, "a", 1.0, T0), event(1, "huge", 1e300, T0)])
    result = proc.process_batch([feedback(0, "a", True, T0 + 1),
                                 feedback(1, "huge", True, T0 + 2)])
    dead = [orjson.loads(o.value) for o in result.outputs if o.topic == "d.deadletter"]
    assert [d["error"]["type"] for d in dead] == ["model_error"]
    assert orjson.loads(dead[0]["payload"]) == {"event_id": "huge", "model": "m",
                                                "label": True}
    assert "could not learn the label of event 'huge'" in dead[0]["error"]["message"]
    assert result.feedback == {("m", "matched"): 2} and result.learned == {"m": 1}


def test_feedback_larger_than_its_limit_is_too_large():
    proc = processor()
    big = orjson.dumps({"event_id": "a", "model": "m", "label": True, "pad": "x" * 70_000})
    result = proc.process_batch([Record("d.feedback", 0, 0, b"k", big, T0)])
    dead = [orjson.loads(o.value) for o in result.outputs]
    assert [d["error"]["type"] for d in dead] == ["too_large"]
    assert not proc.partitions.get(0).feedback.store("m").early


def test_an_alert_or_log_line_from_a_label_names_the_feedback_topic(caplog):
    # The labels flip halfway: ADWIN sees the error rise while a feedback record is handled,
    # so the alert's offset is the feedback topic's, and says so (as does /models).
    proc = processor()
    n = 6000
    records = []
    for i in range(n):  # each label just after its event; the concept flips at n / 2
        records += [event(i, f"e{i}", float(i % 7), T0 + 2 * i),
                    feedback(i, f"e{i}", (i % 7 > 3) == (i < n // 2), T0 + 2 * i + 1)]
    records.append(Record("d.feedback", 0, n, b"k", b"{not json", T0 + 2 * n))
    with caplog.at_level("WARNING", logger="streams.processor"):
        result = proc.process_batch(records)
    alerts = [DriftAlert.model_validate_json(o.value) for o in result.outputs
              if o.topic == "d.alerts"]
    assert alerts and {(a.topic, a.signal) for a in alerts} == {("d.feedback", "error")}
    assert all(n // 2 <= a.offset < n for a in alerts)
    assert proc.partitions.get(0).learners["m"].last_alert["topic"] == "d.feedback"
    dead = [r for r in caplog.records if r.getMessage().startswith("dead letter")]
    assert [(r.topic, r.partition, r.offset) for r in dead] == [("d.feedback", 0, n)]
    assert TextFormatter().format(dead[0]).endswith(f"topic=d.feedback partition=0 offset={n}")
