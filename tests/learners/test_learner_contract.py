"""One contract over every kind of learner: learn, predict, checkpoint round-trip, same
predictions; and each equals River run in-process on the same events. The sweep runs the
checkpoint round-trip over every estimator the pipeline parser accepts."""

import inspect
import itertools
import re

import pytest
from river import base
from river.datasets import synth

from learners import checkpoint, safe_pickle
from learners.checkpoint import Where
from learners.exceptions import CheckpointError, VersionMismatch
from learners.learner import Learner, class_key
from learners.pipeline_text import build_pipeline
from schemas.models_file import ModelSpec
from tests.learners.estimator_sweep import NOT_SWEPT, SWEEP, events, parser_classes, trained
from tests.learners.test_checkpoint_format import v1_blob

PIPELINES = [
    ("classification", "preprocessing.StandardScaler() | linear_model.LogisticRegression()"),
    ("classification", "tree.HoeffdingTreeClassifier(grace_period=50)"),
    ("classification", "forest.ARFClassifier(n_models=3, seed=1)"),
    ("classification", "naive_bayes.GaussianNB()"),
    ("regression", "preprocessing.StandardScaler() | linear_model.LinearRegression()"),
    ("regression", "tree.HoeffdingTreeRegressor()"),
    ("anomaly", "anomaly.HalfSpaceTrees(seed=3)"),
]
WHERE = Where("g", "t.events", 0, "m")
KEY = b"contract-test-key-of-32-bytes-or-more"


def stream(task, n):
    source = synth.Friedman(seed=4) if task == "regression" else synth.SEA(seed=4)
    for x, y in itertools.islice(source, n):
        yield {f"x{k}": v for k, v in x.items()}, (None if task == "anomaly" else y)


def river_step(model, task, x, y):
    if task == "classification":
        proba = model.predict_proba_one(x)
        out = (model.predict_one(x), {class_key(c): p for c, p in proba.items()})
    elif task == "regression":
        out = (model.predict_one(x), None)
    else:
        out = (model.score_one(x), None)
    if task == "anomaly":
        model.learn_one(x)
    elif y is not None:
        model.learn_one(x, y)
    return out


@pytest.mark.parametrize(("task", "pipeline"), PIPELINES, ids=[p for _, p in PIPELINES])
def test_contract(task, pipeline):
    learner = Learner.from_spec(ModelSpec(task=task, pipeline=pipeline), cooldown=100)
    reference = build_pipeline(pipeline)
    events = list(stream(task, 600))
    for x, y in events[:400]:
        step = learner.step(x, y)
        assert (step.prediction, step.scores) == river_step(reference, task, x, y)
    blob = checkpoint.dump(learner, WHERE, offset=399, key=KEY, now=0.0)
    _, restored = checkpoint.load(blob, WHERE, KEY)
    assert restored.n_learned == learner.n_learned == 400
    for x, y in events[400:]:
        a, b = learner.step(x, y), restored.step(x, y)
        assert (a.prediction, a.scores, a.version) == (b.prediction, b.scores, b.version)
        assert (a.prediction, a.scores) == river_step(reference, task, x, y)


def test_any_flipped_byte_is_refused():
    learner = Learner.from_spec(ModelSpec(task="classification", pipeline=PIPELINES[0][1]), 10)
    blob = checkpoint.dump(learner, WHERE, offset=1, key=KEY, now=0.0)
    for position in range(0, len(blob), max(1, len(blob) // 97)):
        damaged = bytearray(blob)
        damaged[position] ^= 0x40
        with pytest.raises(CheckpointError):
            checkpoint.load(bytes(damaged), WHERE, KEY)


def test_a_blob_moved_to_another_key_is_refused():
    learner = Learner.from_spec(ModelSpec(task="classification", pipeline=PIPELINES[0][1]), 10)
    blob = checkpoint.dump(learner, WHERE, offset=1, key=KEY, now=0.0)
    with pytest.raises(CheckpointError, match="belongs to"):
        checkpoint.load(blob, Where("g", "t.events", 1, "m"), KEY)


def test_truncated_and_garbage_blobs_are_refused():
    for blob in (b"", b"\x00" * 10, b"\x00" * 100):
        with pytest.raises(CheckpointError):
            checkpoint.load(blob, WHERE, KEY)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/driftline-pwned",))


def test_a_signed_blob_with_a_foreign_class_is_refused_unexecuted(tmp_path):
    import pickle

    from learners.checkpoint import FORMAT_VERSION, Header, seal

    header = Header(FORMAT_VERSION, WHERE.group, WHERE.topic, WHERE.partition, WHERE.model,
                    1, 0, 0.0)
    blob = seal(header, pickle.dumps(_Evil()), KEY)
    with pytest.raises(CheckpointError, match="not allowed"):
        checkpoint.load(blob, WHERE, KEY)


def _predict(learner, x):
    """What the learner would answer for ``x``, without learning (repr: NaN-safe, exact)."""
    if learner.task == "classification":
        return repr(learner.model.predict_proba_one(x))
    if learner.task == "regression":
        return repr(learner.model.predict_one(x))
    return repr(learner.model.score_one(x))


@pytest.mark.parametrize(("task", "pipeline", "mixed"), SWEEP, ids=[p for _, p, _ in SWEEP])
def test_sweep_checkpoint_restores_bit_identical(task, pipeline, mixed):
    learner, probes = trained(task, pipeline, mixed)
    blob = checkpoint.dump(learner, WHERE, offset=199, key=KEY, now=0.0)
    header, restored = checkpoint.load(blob, WHERE, KEY)
    assert header.n_learned == restored.n_learned == learner.n_learned
    assert safe_pickle.referenced_globals(checkpoint.read_header(blob, KEY)[1]) <= \
        safe_pickle.ALLOWED
    assert [_predict(restored, x) for x, _ in probes] == [_predict(learner, x) for x, _ in probes]
    for x, y in probes:  # and learning goes on identically
        a, b = learner.step(x, y), restored.step(x, y)
        assert repr((a.prediction, a.scores, a.version, a.learned)) == \
            repr((b.prediction, b.scores, b.version, b.learned))
    assert (learner.n_learned, learner.n_scored) == (restored.n_learned, restored.n_scored)
    checkpoint.check_checkpointable("m", learner)
    # The same learner in the previous format: it loads identically, or stops in one line.
    try:
        _, old = checkpoint.load(v1_blob(learner, WHERE, 249, KEY), WHERE, KEY)
    except VersionMismatch as exc:
        assert "\n" not in str(exc) and "written by format 1" in str(exc)
    else:
        assert [_predict(old, x) for x, _ in probes] == [_predict(learner, x) for x, _ in probes]


def test_amf_regressor_round_trips_at_river_level():
    from river import forest

    model = forest.AMFRegressor(seed=1)
    stream = list(events("regression", 250))
    for x, y in stream[:200]:
        model.learn_one(x, y)
    copy = safe_pickle.loads(safe_pickle.dumps(model))
    for x, y in stream[200:]:
        assert repr(copy.predict_one(x)) == repr(model.predict_one(x))
        model.learn_one(x, y)
        copy.learn_one(x, y)


def test_the_sweep_covers_every_estimator_the_parser_accepts():
    classes = parser_classes()
    used = {classes[name] for name in re.findall(r"([a-z_.]+\.[A-Z]\w*)\(",
                                                  " ".join(p for _, p, _ in SWEEP))}
    reasons = {classes[name] for name in NOT_SWEPT}
    kinds = (base.Classifier, base.Regressor, base.AnomalyDetector, base.Transformer)
    missing = sorted(name for name, cls in classes.items()
                     if issubclass(cls, kinds) and not inspect.isabstract(cls)
                     and cls not in used and cls not in reasons)
    assert missing == []
    assert len(SWEEP) >= 100
