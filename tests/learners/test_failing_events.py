"""No single event can break a learner: a refused or failing event leaves it bit-identical
(its pickle, byte for byte), and what it learns stays finite and usable."""

import pickle
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learners import checkpoint
from learners.checkpoint import Where
from learners.exceptions import EventRefused, ModelError
from learners.learner import Learner
from schemas.models_file import ModelSpec

SCALED_LOGREG = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"
SCALED_LINREG = "preprocessing.StandardScaler() | linear_model.LinearRegression()"


def learner(task, pipeline, **spec):
    return Learner.from_spec(ModelSpec(task=task, pipeline=pipeline, **spec), cooldown=100)


def trained(task, pipeline, n=200, label=None, seed=1, **spec):
    rng = random.Random(seed)
    model = learner(task, pipeline, **spec)
    for _ in range(n):
        x = {"amount": rng.uniform(0, 100), "age": rng.uniform(18, 90)}
        if label is not None:
            y = label(rng, x)
        elif task == "classification":
            y = x["amount"] > 50
        elif task == "regression":
            y = 10 * x["amount"] + rng.gauss(0, 1)
        else:
            y = None
        model.step(x, y)
    return model


def strings(rng, x):
    return "high" if x["amount"] > 50 else "low"


# (why, learner factory, features, label, expected exception, expected dead-letter reason)
FAILURES = [
    ("string where the scaler saw numbers", lambda: trained("classification", SCALED_LOGREG),
     {"amount": "lots", "age": 30.0}, True, ModelError, None),
    ("string where a Gaussian NB saw numbers",
     lambda: trained("classification", "naive_bayes.GaussianNB()", label=strings),
     {"amount": "lots", "age": 30.0}, "high", ModelError, None),
    ("a new class for a binary model", lambda: trained("classification", SCALED_LOGREG),
     {"amount": 10.0, "age": 30.0}, 2, EventRefused, "invalid_label"),
    ("NaN reaching the model", lambda: trained("classification", SCALED_LOGREG),
     {"amount": float("nan"), "age": 30.0}, True, EventRefused, "invalid_event"),
    ("infinity reaching the model", lambda: trained("regression", SCALED_LINREG),
     {"amount": float("-inf"), "age": 30.0}, 5.0, EventRefused, "invalid_event"),
    ("an int label after strings (Hoeffding tree)",
     lambda: trained("classification", "tree.HoeffdingTreeClassifier()", label=strings),
     {"amount": 10.0, "age": 30.0}, 3, EventRefused, "invalid_label"),
    ("an int label after strings (ARF)",
     lambda: trained("classification", "forest.ARFClassifier(n_models=3, seed=1)",
                     label=strings),
     {"amount": 10.0, "age": 30.0}, 3, EventRefused, "invalid_label"),
    ("a string label on an anomaly model",
     lambda: trained("anomaly", "anomaly.HalfSpaceTrees(seed=1)"),
     {"amount": 10.0, "age": 30.0}, "fraud", EventRefused, "invalid_label"),
    ("a string label on a regressor", lambda: trained("regression", SCALED_LINREG),
     {"amount": 10.0, "age": 30.0}, "big", EventRefused, "invalid_label"),
    ("1e300 making the scaler's variance infinite",
     lambda: trained("classification", SCALED_LOGREG),
     {"amount": 1e300, "age": 30.0}, True, ModelError, None),
    ("1e300 making a regressor's prediction infinite",
     lambda: trained("regression", SCALED_LINREG),
     {"amount": 1e300, "age": 30.0}, 5.0, ModelError, None),
    ("an integer with 400 digits", lambda: trained("regression", SCALED_LINREG),
     {"amount": 10 ** 400, "age": 30.0}, 5.0, EventRefused, "invalid_event"),
    ("a label with 400 digits", lambda: trained("regression", SCALED_LINREG),
     {"amount": 1.0, "age": 30.0}, -10 ** 400, EventRefused, "invalid_event"),
    ("a list as a feature", lambda: trained("classification", SCALED_LOGREG),
     {"amount": [1, 2], "age": 30.0}, True, EventRefused, "invalid_event"),
    ("a label longer than max_label_chars",
     lambda: trained("classification", "naive_bayes.GaussianNB()", label=strings),
     {"amount": 1.0, "age": 30.0}, "x" * 257, EventRefused, "invalid_label"),
    ("a class beyond max_classes",
     lambda: trained("classification", "naive_bayes.GaussianNB()", label=strings,
                     max_classes=2),
     {"amount": 1.0, "age": 30.0}, "medium", EventRefused, "invalid_label"),
    ("features beyond max_features",
     lambda: trained("regression", SCALED_LINREG, max_features=3),
     {"amount": 1.0, "age": 30.0, "city": 1.0, "zip": 2.0}, 5.0, EventRefused,
     "invalid_event"),
]


@pytest.mark.parametrize(("why", "make", "x", "y", "error", "reason"), FAILURES,
                         ids=[f[0] for f in FAILURES])
def test_a_failing_event_leaves_the_learner_bit_identical(why, make, x, y, error, reason):
    model = make()
    before = pickle.dumps(model, protocol=5)
    with pytest.raises(error) as caught:
        model.step(x, y)
    assert getattr(caught.value, "reason", None) == reason
    if error is ModelError:
        assert caught.value.unhealthy is None
    assert pickle.dumps(model, protocol=5) == before, why


@pytest.mark.parametrize(("why", "make", "x", "y", "error", "reason"), FAILURES,
                         ids=[f[0] for f in FAILURES])
def test_after_a_failing_event_the_model_still_scores_finite(why, make, x, y, error, reason):
    model = make()
    with pytest.raises(error):
        model.step(x, y)
    for _ in range(3):
        step = model.step({"amount": 20.0, "age": 40.0}, None)
        assert step.prediction is not None
        for value in (step.scores or {}).values():
            assert 0.0 <= value <= 1.0


def test_the_reported_1e300_event_no_longer_nulls_every_later_score():
    model = trained("classification", SCALED_LOGREG)
    with pytest.raises(ModelError, match="non-finite"):
        model.step({"amount": 1e300, "age": 30.0}, True)
    steps = [model.step({"amount": float(a), "age": 40.0}, a > 50) for a in range(0, 100, 7)]
    assert all(s.scores and abs(sum(s.scores.values()) - 1.0) < 1e-9 for s in steps)
    assert model.metric.get() == model.metric.get()  # not NaN


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                       st.text(max_size=5), st.booleans()),
       label=st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3)))
def test_any_value_or_label_either_is_learned_or_changes_nothing(value, label):
    model = trained("classification", SCALED_LOGREG, n=50)
    before = pickle.dumps(model, protocol=5)
    try:
        step = model.step({"amount": value, "age": 30.0}, label)
    except (EventRefused, ModelError) as exc:
        assert getattr(exc, "unhealthy", None) is None
        assert pickle.dumps(model, protocol=5) == before
        return
    assert step.unhealthy is None
    later = model.step({"amount": 20.0, "age": 40.0}, None)
    assert later.scores and abs(sum(later.scores.values()) - 1.0) < 1e-9


def test_the_label_type_survives_a_checkpoint():
    model = trained("classification", "tree.HoeffdingTreeClassifier()", label=strings)
    where, key = Where("g", "t.events", 0, "m"), b"k"
    _, restored = checkpoint.load(checkpoint.dump(model, where, 1, key, 0.0), where, key)
    before = pickle.dumps(restored, protocol=5)
    with pytest.raises(EventRefused, match="labels are str; this label is int"):
        restored.step({"amount": 1.0, "age": 30.0}, 1)
    assert pickle.dumps(restored, protocol=5) == before
    assert restored.step({"amount": 1.0, "age": 30.0}, "low").learned


def test_a_declared_label_type_is_enforced_from_the_first_label():
    model = learner("classification", "tree.HoeffdingTreeClassifier()", label_type="str")
    with pytest.raises(EventRefused) as caught:
        model.step({"a": 1.0}, 1)
    assert caught.value.reason == "invalid_label"
    assert model.n_learned == 0 and model.step({"a": 1.0}, "1").learned


def test_a_none_prediction_is_no_prediction_yet_and_no_error():
    model = learner("regression", "forest.AMFRegressor(seed=1)")
    first = model.step({"a": 1.0}, 2.0)
    assert (first.prediction, first.learned, first.signal) == (None, True, None)
    assert model.metric.get() == 0.0 and model.watcher.n_seen == 0 and model.n_learned == 1
    second = model.step({"a": 1.0}, 2.0)
    assert second.prediction == pytest.approx(2.0) and model.watcher.n_seen == 1


def test_a_state_that_turns_non_finite_anyway_is_restored_fresh_and_reported():
    model = trained("regression", SCALED_LINREG, n=50)
    model.model["LinearRegression"]._weights["amount"] = float("nan")  # as if by accident
    step = model.step({"amount": 20.0, "age": 40.0}, 200.0)
    assert step.unhealthy == "the model's predictions are not finite"
    assert model.n_unhealthy == 1 and step.learned and step.prediction == 0.0
    assert model.model["LinearRegression"]._weights["amount"] == model.model[
        "LinearRegression"]._weights["amount"]  # finite again (fresh, then learned)


def test_only_the_event_s_own_features_may_be_non_finite():
    model = trained("regression", SCALED_LINREG, n=50)
    before = pickle.dumps(model, protocol=5)
    with pytest.raises(ModelError, match="not finite") as caught:
        model.step({"amount": 1.7e308, "age": 40.0}, None)  # huge input, healthy model
    assert caught.value.unhealthy is None and pickle.dumps(model, protocol=5) == before


def test_scores_are_limited_to_the_top_k_classes():
    model = learner("classification", "naive_bayes.GaussianNB()", scores_top_k=3)
    rng = random.Random(2)
    for i in range(200):
        model.step({"a": rng.gauss(i % 10, 0.5)}, f"c{i % 10}")
    step = model.step({"a": 4.0}, None)
    assert len(step.scores) == 3 and step.prediction == "c4"
    assert list(step.scores) == sorted(step.scores, key=step.scores.get, reverse=True)


def test_max_features_counts_distinct_names_and_survives_pickling():
    model = learner("regression", SCALED_LINREG, max_features=4)
    model.step({"a": 1.0, "b": 1.0}, 1.0)
    model = pickle.loads(pickle.dumps(model))
    model.step({"a": 1.0, "c": 1.0, "d": 1.0}, 1.0)
    with pytest.raises(EventRefused, match="1 new features; the model has 4 of at most 4"):
        model.step({"e": 1.0}, 1.0)
    assert model.step({"b": 2.0, "d": 2.0}, 1.0).learned


def test_an_old_checkpoint_without_input_tracking_is_upgraded_on_load():
    model = trained("classification", SCALED_LOGREG, n=20)
    state = dict(model.__dict__)
    for name in ("kinds", "_kinds_learned", "classes", "label_type", "_record", "_high",
                 "_probe", "n_unhealthy"):
        state.pop(name)
    old = Learner.__new__(Learner)
    old.__setstate__(state)
    assert old.kinds == {} and old.label_type is None
    assert old.step({"amount": 60.0, "age": 30.0}, True).learned
    assert old.label_type is bool and old.classes == {True}


def test_an_error_that_overflows_reaches_neither_metric_nor_adwin():
    model = learner("regression", "linear_model.LinearRegression(intercept_init=-1.7e308, "
                                  "intercept_lr=0.0)")
    step = model.step({"a": 0.0}, 1.7e308)
    assert step.learned and step.prediction == -1.7e308
    assert model.watcher.n_seen == 0 and model.metric.get() == 0.0
