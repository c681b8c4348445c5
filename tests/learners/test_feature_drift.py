"""Drift without labels, on learners run in-process: a covariate shift is named, a
stationary stream is quiet, the watcher survives pickling and is bounded."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from learners import checkpoint
from learners.feature_drift import MAX_CATEGORIES, CategoryWatch, FeatureWatch
from learners.learner import Learner
from schemas.models_file import DriftSpec, ModelSpec

PIPELINE = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"


def learner(features: bool = True, prediction: bool = False, max_features: int = 50) -> Learner:
    spec = ModelSpec(task="classification", pipeline=PIPELINE,
                     drift=DriftSpec(features=features, prediction=prediction,
                                     max_features=max_features))
    return Learner.from_spec(spec, cooldown=1000)


def event(rng: random.Random, shifted: bool, categorical: bool = True) -> dict:
    x = {f"x{k}": rng.gauss(0, 1) for k in range(9)}
    x["amount"] = rng.gauss(3.0 if shifted else 0.0, 1)
    if categorical:  # unlabelled only: StandardScaler cannot learn a string
        x["country"] = rng.choice(["fr", "de"] if not shifted else ["fr", "de", "it", "it"])
    return x


def test_a_covariate_shift_without_labels_names_the_shifted_features_only():
    rng = random.Random(11)
    model = learner()
    alerts = []
    for i in range(20_000):
        step = model.step(event(rng, shifted=i >= 10_000), None)
        alerts += [(i, s) for s in step.watched]
    names = {s.feature for _, s in alerts}
    assert names == {"amount", "country"}, [(i, s.feature) for i, s in alerts]
    assert all(s.signal == "feature" for _, s in alerts)
    first = {s.feature: (i, s) for i, s in reversed(alerts)}
    i, amount = first["amount"]
    assert 10_000 <= i < 10_200 and amount.detector == "ADWIN"
    assert amount.before["mean"] < 0.5 and amount.after["mean"] > amount.before["mean"] + 1
    i, country = first["country"]
    assert 10_000 <= i < 12_000 and country.detector == "chi2"
    assert country.after["it"] > 0.4 and "it" not in country.before
    # Deduplicated: one alert per shifted feature for this one change.
    assert len(alerts) == 2
    assert model.n_learned == 0  # no labels: nothing learned


def test_a_stationary_stream_of_50000_events_raises_no_alert():
    rng = random.Random(5)
    model = learner(prediction=True)
    for _ in range(5000):  # a model still learning from scratch does change its predictions
        x = event(rng, False, categorical=False)
        model.step(x, x["x0"] + x["x1"] > 0)
    alerts = []
    for _ in range(50_000):
        x = event(rng, False, categorical=False)
        step = model.step(x, x["x0"] + x["x1"] > 0)
        alerts += step.watched
    assert alerts == []


def test_prediction_drift_is_seen_without_labels():
    rng = random.Random(2)
    model = learner(features=False, prediction=True)
    for _ in range(2000):  # learn a rule on x0 first
        x = {"x0": rng.gauss(0, 1)}
        model.step(x, x["x0"] > 0)
    alerts = []
    for i in range(10_000):
        x = {"x0": rng.gauss(0 if i < 5000 else 1.5, 1)}
        alerts += [(i, s) for s in model.step(x, None).watched]
    assert [(s.signal, s.feature) for _, s in alerts] == [("prediction", None)]
    assert alerts[0][0] >= 5000
    assert alerts[0][1].after["true"] > alerts[0][1].before["true"]


def test_watchers_are_bounded_to_the_first_max_features():
    model = learner(max_features=3)
    model.step({f"f{i}": float(i) for i in range(10)}, None)
    model.step({"late": 1.0, "f0": 2.0}, None)
    assert model.inputs is not None and list(model.inputs.watchers) == ["f0", "f1", "f2"]


def test_off_by_default_and_state_survives_a_signed_checkpoint():
    rng = random.Random(9)
    assert learner(features=False).inputs is None
    model = learner(prediction=True)
    for _ in range(3000):
        x = event(rng, False, categorical=False)
        model.step(x, x["x0"] > 0)
    x = event(rng, False)  # a categorical watcher too (scored, not learned)
    model.step(x, None)
    where = checkpoint.Where("g", "t.events", 0, "m")
    # Through the real checkpoint format: its unpickler's allow-list must take the watchers.
    _, copy = checkpoint.load(checkpoint.dump(model, where, 3000, b"k", 0.0), where, b"k")
    assert copy.inputs is not None and "country" in copy.inputs.watchers
    for i in range(12_000):
        x = event(rng, i > 2000, categorical=False)
        got = [(s.feature, s.n_seen, s.mean_after) for s in model.step(x, x["x0"] > 0).watched]
        again = [(s.feature, s.n_seen, s.mean_after) for s in copy.step(x, x["x0"] > 0).watched]
        assert got == again


def test_a_restored_learner_without_the_attribute_gets_none():
    model = learner(features=False)
    state = dict(model.__dict__)
    del state["inputs"]
    fresh = Learner.__new__(Learner)
    fresh.__setstate__(state)
    assert fresh.inputs is None


def test_adopt_follows_the_models_file():
    model = learner(features=False)
    on = ModelSpec(task="classification", pipeline=PIPELINE, drift=DriftSpec(features=True))
    assert model.adopt(on, 500) and model.inputs is not None
    assert model.inputs.cooldown == 500
    assert model.adopt(ModelSpec(task="classification", pipeline=PIPELINE), 500)
    assert model.inputs is None


@given(st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=300))
@settings(max_examples=100, deadline=None)
def test_categories_are_bounded_and_every_value_is_counted(values):
    watch = CategoryWatch(window=50, alpha=1e-4)
    for v in values:
        watch.update(v)
    assert len(watch.current) <= MAX_CATEGORIES + 1
    assert watch.n_seen == len(values)
    assert sum(watch.current.values()) == len(values) % 50


@given(st.integers(1, 60))
def test_a_string_where_numbers_were_seen_is_ignored(n):
    watch = FeatureWatch(features=True, prediction=False, max_features=5, cooldown=10)
    for i in range(n):
        watch.update({"a": float(i % 3)}, None)
    assert watch.update({"a": "text"}, None) == []


def test_the_models_file_configures_label_free_drift_and_incidents():
    import pytest

    from schemas.exceptions import ConfigError
    from schemas.models_file import ModelsConfig

    cfg = ModelsConfig.from_toml(f'''
[models.fraud]
task = "classification"
pipeline = "{PIPELINE}"
[models.fraud.drift]
features = true
prediction = true
max_features = 3
incident_window = 60
''')
    drift = cfg.models["fraud"].drift
    assert (drift.features, drift.prediction, drift.max_features, drift.incident_window) == (
        True, True, 3, 60.0)
    assert DriftSpec().features is False and DriftSpec().prediction is False
    assert (DriftSpec().max_features, DriftSpec().incident_window) == (50, 600.0)
    with pytest.raises(ConfigError, match=r"^models file: models.fraud.drift.max_features: "):
        ModelsConfig.from_toml(f'[models.fraud]\ntask = "classification"\npipeline = '
                               f'"{PIPELINE}"\n[models.fraud.drift]\nmax_features = 0\n')
