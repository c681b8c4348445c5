"""A restored learner keeps its state when the models file still means the same model."""

import pickle

import pytest

from learners.learner import Learner
from schemas.models_file import ModelSpec

PIPELINE = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"


def restored(pipeline=PIPELINE, **spec):
    learner = Learner.from_spec(ModelSpec(task="classification", pipeline=pipeline, **spec), 10)
    for i in range(30):
        learner.step({"x": float(i)}, i % 3 == 0)
    return pickle.loads(pickle.dumps(learner))


@pytest.mark.parametrize("text", [
    "preprocessing.StandardScaler()|linear_model.LogisticRegression()",
    """preprocessing.StandardScaler()
       | linear_model.LogisticRegression()""",
    "preprocessing.StandardScaler() | linear_model.LogisticRegression(l2=0.0, "
    "intercept_lr=0.01)",
    "preprocessing.StandardScaler(with_std=True) | linear_model.LogisticRegression("
    "intercept_lr=0.01, l2=0.0)",
])
def test_a_reformatted_pipeline_keeps_the_learned_state(text):
    learner = restored()
    assert learner.adopt(ModelSpec(task="classification", pipeline=text), 10)
    assert learner.n_learned == 30 and learner.spec.pipeline == text


@pytest.mark.parametrize(("text", "task"), [
    ("preprocessing.StandardScaler() | linear_model.LogisticRegression(l2=0.01)",
     "classification"),
    ("linear_model.LogisticRegression()", "classification"),
    (PIPELINE, "anomaly"),
])
def test_another_model_does_not_take_the_state(text, task):
    assert not restored().adopt(ModelSpec(task=task, pipeline=text, metric="Accuracy"), 10)


def test_new_limits_and_drift_settings_are_adopted():
    learner = restored()
    spec = ModelSpec(task="classification", pipeline=PIPELINE, scores_top_k=1,
                     drift={"delta": 0.01, "min_effect": 0.4})
    assert learner.adopt(spec, 5)
    assert learner.watcher.min_effect == 0.4 and learner.watcher.delta == 0.01
    assert len(learner.step({"x": 1.0}, None).scores) == 1


def test_a_declared_label_type_that_contradicts_the_learned_one_is_another_model():
    learner = restored()
    assert learner.label_type is bool
    assert not learner.adopt(ModelSpec(task="classification", pipeline=PIPELINE,
                                       label_type="str"), 10)
    assert learner.adopt(ModelSpec(task="classification", pipeline=PIPELINE,
                                   label_type="bool"), 10)
