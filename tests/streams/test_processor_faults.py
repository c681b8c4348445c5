"""No single event can crash the processor or ruin a model: each fault from the reports
becomes the right dead letter (or alert), and the next events are scored as before."""

import orjson
import pytest

from learners.registry import ModelRegistry
from schemas.models_file import ModelsConfig
from schemas.outputs import DeadLetter, DriftAlert, HealthAlert, Prediction
from schemas.settings import Settings
from streams.processor import EventProcessor
from streams.records import Record

MODELS = """
[models.clf]
task = "classification"
pipeline = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"
[models.nb]
task = "classification"
pipeline = "naive_bayes.GaussianNB()"
[models.wide]
task = "classification"
pipeline = "naive_bayes.GaussianNB()"
max_label_chars = 65536
[models.tree]
task = "classification"
pipeline = "tree.HoeffdingTreeClassifier()"
[models.amf]
task = "regression"
pipeline = "forest.AMFRegressor(seed=1)"
[models.reg]
task = "regression"
pipeline = "preprocessing.StandardScaler() | linear_model.LinearRegression()"
[models.odd]
task = "anomaly"
pipeline = "anomaly.HalfSpaceTrees(seed=1)"
"""


@pytest.fixture
def processor():
    proc = EventProcessor(Settings(topic_prefix="p."),
                          ModelRegistry(ModelsConfig.from_toml(MODELS), cooldown=10))
    proc.partition(0)  # assigned and started fresh
    return proc


def rec(offset, value):
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return Record("p.events", 0, offset, b"k", raw, None)


def ev(i, model, label, **features):
    return {"event_id": f"e{i}", "model": model, "features": features or {"x": float(i % 10)},
            "label": label}


def kinds(out):
    result = []
    for o in out:
        if o.topic == "p.deadletter":
            result.append(DeadLetter.model_validate_json(o.value).error.type)
        elif o.topic == "p.predictions":
            result.append("prediction")
        else:
            result.append(orjson.loads(o.value)["alert"])
    return result


def test_sixty_100kb_labels_are_refused_not_a_poison_pill(processor):
    out = processor.process([rec(i, ev(i, "nb", f"{i:03d}" + "x" * 100_000)) for i in range(60)])
    assert kinds(out) == ["invalid_label"] * 60
    assert "label of 100003 characters; the limit is 256" in DeadLetter.model_validate_json(
        out[0].value).error.message


def test_a_prediction_beyond_the_output_limit_is_a_dead_letter(processor):
    records = [rec(i, ev(i, "wide", f"{i:03d}" + "x" * 30_000)) for i in range(60)]
    out = processor.process(records)
    assert len(out) == 60 and set(kinds(out)) == {"prediction", "output_too_large"}
    letter = next(DeadLetter.model_validate_json(o.value) for o in out
                  if o.topic == "p.deadletter")
    assert "limit is 1048576 (the model learned the event)" in letter.error.message
    assert all(len(o.value) <= 1024 * 1024 for o in out if o.topic == "p.predictions")


def test_a_400_digit_number_is_an_invalid_event(processor):
    raw = b'{"event_id": "e", "model": "reg", "features": {"x": ' + b"9" * 400 + b'}, "label": 1}'
    out = processor.process([rec(0, raw)])
    letter = DeadLetter.model_validate_json(out[0].value)
    assert letter.error.type == "invalid_event"
    assert "400 digits" in letter.error.details[0]["msg"]


def test_1e300_is_refused_and_later_scores_stay_numbers(processor):
    records = [rec(i, ev(i, "clf", i % 2 == 0, amount=float(i))) for i in range(20)]
    records.append(rec(20, ev(20, "clf", True, amount=1e300)))
    records += [rec(21 + i, ev(21 + i, "clf", i % 2 == 0, amount=float(i))) for i in range(5)]
    out = processor.process(records)
    assert kinds(out) == ["prediction"] * 20 + ["model_error"] + ["prediction"] * 5
    assert "non-finite" in DeadLetter.model_validate_json(out[20].value).error.message
    for o in out[21:]:
        scores = Prediction.model_validate_json(o.value).scores
        assert all(isinstance(v, float) for v in scores.values())


def test_an_int_label_after_strings_does_not_brick_the_tree(processor):
    records = [rec(i, ev(i, "tree", "spam" if i % 2 else "ham")) for i in range(10)]
    records += [rec(10, ev(10, "tree", 3)), rec(11, ev(11, "tree", "ham"))]
    assert kinds(processor.process(records)) == ["prediction"] * 10 + ["invalid_label",
                                                                       "prediction"]


def test_a_string_label_on_an_anomaly_model_is_invalid(processor):
    out = processor.process([rec(0, ev(0, "odd", "fraud")), rec(1, ev(1, "odd", True))])
    assert kinds(out) == ["invalid_label", "prediction"]


def test_none_before_learning_is_a_null_prediction_not_an_error(processor):
    out = processor.process([rec(0, ev(0, "amf", 2.0)), rec(1, ev(1, "amf", 2.0))])
    first, second = (Prediction.model_validate_json(o.value) for o in out)
    assert (first.prediction, first.learned) == (None, True)
    assert second.prediction is not None and second.model_version == 1


def test_a_non_finite_state_is_restored_and_alerted(processor):
    processor.process([rec(i, ev(i, "reg", float(i))) for i in range(5)])
    learner = processor.partition(0).learner("reg")
    learner.model["LinearRegression"]._weights["x"] = float("nan")
    out = processor.process([rec(5, ev(5, "reg", 5.0))])
    assert kinds(out) == ["prediction", "model_unhealthy"]
    alert = HealthAlert.model_validate_json(out[1].value)
    assert (alert.model, alert.offset, alert.action) == ("reg", 5, "fresh")
    assert Prediction.model_validate_json(out[0].value).prediction == 0.0
    assert processor.partition(0).learner("reg").n_unhealthy == 1


def test_drift_alerts_say_what_they_are(processor):
    records = [rec(i, ev(i, "clf", (i % 7 > 3) == (i < 3000), x=float(i % 7)))
               for i in range(6000)]
    alerts = [o for o in processor.process(records) if o.topic == "p.alerts"]
    assert alerts and all(DriftAlert.model_validate_json(a.value).alert == "drift"
                          for a in alerts)


def test_seconds_and_milliseconds_give_the_same_latency_origin(processor):
    records = [rec(0, {**ev(0, "clf", True), "timestamp": 1_767_225_600}),
               rec(1, {**ev(1, "clf", True), "timestamp": 1_767_225_600.0}),
               rec(2, {**ev(2, "clf", True), "timestamp": 1_767_225_600_000}),
               rec(3, {**ev(3, "clf", True), "timestamp": 42})]
    result = processor.process_batch(records)
    assert kinds(result.outputs) == ["prediction"] * 3 + ["invalid_event"]
    assert result.origins_ms == (1_767_225_600_000.0,) * 3
