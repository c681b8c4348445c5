"""Late labels, pure part: joins, outcomes, event-time expiry, eviction, delayed learning."""

from collections import Counter

import pytest
from river import linear_model, metrics, preprocessing

from learners.feedback import (
    EARLY,
    LEARNED,
    PENDING,
    PartitionFeedback,
    PendingPredictions,
    Received,
    learn_delayed,
)
from learners.learner import Learner
from schemas.models_file import ModelSpec

SPEC = ModelSpec(task="classification",
                 pipeline="preprocessing.StandardScaler() | linear_model.LogisticRegression()")


def partition(ttl_ms=10_000, grace_ms=1_000, max_pending=1_000):
    return PartitionFeedback(lambda model: PendingPredictions(ttl_ms, grace_ms, max_pending))


def event(part, event_id, at, offset=0, model="m"):
    return part.scored(model, event_id, offset, {"x": 1.0}, (True, {True: 0.6, False: 0.4}), at)


def label(part, event_id, at, offset=0, model="m", value=True):
    return part.feedback(model, event_id, value, Received(offset, b"k", b"payload", at))


def test_match_learns_the_stored_features_once_then_duplicates():
    part = partition()
    part.scored("m", "e1", 7, {"b": 2, "a": 1.5, "s": "FR"}, ("x", None), 100)
    got = label(part, "e1", 200, offset=3)
    assert got.counts == Counter(matched=1)
    (join,) = got.joins
    assert (join.model, join.entry.offset, join.feedback_offset, join.label) == ("m", 7, 3, True)
    assert list(join.entry.features.items()) == [("b", 2), ("a", 1.5), ("s", "FR")]
    assert type(join.entry.features["b"]) is int and join.entry.event_ms == 100
    assert label(part, "e1", 300).counts == Counter(duplicate=1)
    assert len(part.store("m")) == 0


def test_early_feedback_is_joined_when_its_event_comes_within_grace():
    part = partition(grace_ms=1_000)
    assert label(part, "e1", 1_000, offset=4).counts == Counter(early=1)
    got = event(part, "e1", 2_000, offset=9)
    assert got.counts == Counter(matched=1)
    assert [(j.entry.event_id, j.entry.offset, j.feedback_offset) for j in got.joins] == [
        ("e1", 9, 4)]
    assert label(part, "e1", 2_100).counts == Counter(duplicate=1)


def test_early_feedback_past_grace_is_unmatched_with_its_record():
    part = partition(grace_ms=1_000)
    label(part, "e1", 1_000, offset=4)
    assert part.advance(2_000).unmatched == []  # exactly grace: still held
    got = part.advance(2_001)
    assert got.counts == Counter(unmatched=1)
    ((model, held),) = got.unmatched
    assert (model, held.event_id, held.offset, held.key, held.value) == (
        "m", "e1", 4, b"k", b"payload")
    assert event(part, "e1", 2_002).joins == []  # too late: kept as pending instead


def test_a_second_feedback_while_one_is_held_is_a_duplicate():
    part = partition()
    label(part, "e1", 100)
    assert label(part, "e1", 200).counts == Counter(duplicate=1)
    assert len(event(part, "e1", 300).joins) == 1


def test_entries_expire_by_event_time_only():
    part = partition(ttl_ms=10_000)
    event(part, "e1", 1_000)
    event(part, "e2", 5_000)
    assert part.advance(11_000).counts == Counter()
    assert part.advance(11_001).counts == Counter(expired=1)
    assert label(part, "e1", 11_002).counts == Counter(early=1)  # unknown now
    assert label(part, "e2", 11_003).counts == Counter(matched=1)


def test_time_never_goes_back():
    part = partition(ttl_ms=10_000)
    event(part, "e1", 20_000)
    event(part, "e2", 1_000)  # an older timestamp: the entry takes the partition's clock
    assert part.watermark == 20_000 and part.store("m").entries["e2"].event_ms == 20_000
    assert part.advance(None).counts == Counter() and part.watermark == 20_000


def test_oldest_entries_are_evicted_beyond_max_pending():
    part = partition(max_pending=2)
    event(part, "e1", 1)
    event(part, "e2", 2)
    label(part, "e1", 3)  # e1 learned: no longer pending
    event(part, "e3", 4)
    assert event(part, "e4", 5).counts == Counter(evicted=1)
    assert sorted(part.store("m").entries) == ["e3", "e4"]


def test_a_new_event_with_a_pending_id_replaces_it():
    part = partition()
    event(part, "e1", 1, offset=1)
    assert event(part, "e1", 2, offset=2).counts == Counter(evicted=1)
    assert label(part, "e1", 3).joins[0].entry.offset == 2


def test_held_feedback_overflow_makes_the_oldest_unmatched():
    part = partition(max_pending=2)
    label(part, "a", 1)
    label(part, "b", 2)
    got = label(part, "c", 3)
    assert got.counts == Counter(early=1, unmatched=1)
    assert [held.event_id for _, held in got.unmatched] == ["a"]


def test_learned_ids_are_forgotten_after_ttl():
    part = partition(ttl_ms=100, grace_ms=10)
    event(part, "e1", 0)
    label(part, "e1", 50)
    assert label(part, "e1", 150).counts == Counter(duplicate=1)
    assert label(part, "e1", 151).counts == Counter(early=1)


def test_models_have_their_own_stores_and_share_the_clock():
    part = partition(ttl_ms=10)
    event(part, "e1", 0, model="a")
    event(part, "e1", 0, model="b")
    assert label(part, "e1", 5, model="a").counts == Counter(matched=1)
    assert label(part, "e1", 20, model="a").counts == Counter(early=1, expired=1)


def test_changes_since_last_checkpoint_are_net_and_reset():
    store = PendingPredictions(ttl_ms=100, grace_ms=10, max_pending=10)
    store.add("a", 0, {"x": 1}, (True, None), 0)
    store.add("b", 1, {"x": 2}, (True, None), 0)
    first = store.changes_since_last_checkpoint()
    assert sorted(first.added) == [(PENDING, "a"), (PENDING, "b")] and first.removed == []
    assert store.changes_since_last_checkpoint().added == {}
    store.match("a", True, Received(0, None, b"", 5), 5)  # a: pending -> learned
    store.add("c", 2, {"x": 3}, (True, None), 5)
    store.match("c", True, Received(1, None, b"", 6), 6)  # c never reached a checkpoint
    store.match("z", True, Received(2, None, b"", 6), 6)  # held
    delta = store.changes_since_last_checkpoint()
    assert sorted(delta.added) == [(EARLY, "z"), (LEARNED, "a"), (LEARNED, "c")]
    assert delta.removed == [(PENDING, "a")]
    assert delta.before[(PENDING, "a")].event_id == "a" and delta.before[(LEARNED, "a")] is None


def test_deltas_compose():
    store = PendingPredictions(ttl_ms=100, grace_ms=10, max_pending=10)
    store.add("a", 0, {"x": 1}, (True, None), 0)
    one = store.changes_since_last_checkpoint()
    store.match("a", True, Received(0, None, b"", 5), 5)
    store.add("b", 1, {"x": 1}, (True, None), 5)
    both = one.then(store.changes_since_last_checkpoint())
    assert sorted(both.added) == [(LEARNED, "a"), (PENDING, "b")]
    assert both.removed == [(PENDING, "a")] and both.before[(PENDING, "a")] is None


def fresh_learner(spec=SPEC):
    return Learner.from_spec(spec, cooldown=100)


def test_learn_delayed_equals_river_with_delay():
    """The same as River's progressive validation with delay: metric from the prediction
    made at scoring time, learning from the features as they were."""
    learner = fresh_learner()
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    metric = metrics.Accuracy()
    xs = [{"x": float(i % 7), "y": float(i % 3)} for i in range(60)]
    ys = [i % 7 > 3 for i in range(60)]
    stored, river_preds = [], []
    for i, x in enumerate(xs):  # score everything first, labels come 20 events later
        step = learner.step(x, None)
        stored.append((step.prediction, None))
        river_preds.append(model.predict_one(x))
        if i >= 20:
            j = i - 20
            learn_delayed(learner, xs[j], stored[j], ys[j])
            metric.update(ys[j], river_preds[j])
            model.learn_one(xs[j], ys[j])
    probe = {"x": 5.0, "y": 1.0}
    assert learner.model.predict_proba_one(probe) == model.predict_proba_one(probe)
    assert learner.metric.get() == metric.get() and learner.n_learned == 40
    assert learner.watcher.n_seen == 40


def test_learn_delayed_regression_and_anomaly():
    reg = fresh_learner(ModelSpec(task="regression", pipeline="linear_model.LinearRegression()"))
    step = learn_delayed(reg, {"x": 1.0}, (0.5, None), 2.0)
    assert step.learned and reg.metric.get() == 1.5 and reg.watcher.n_seen == 1
    anomaly = fresh_learner(ModelSpec(task="anomaly", pipeline="anomaly.HalfSpaceTrees()"))
    assert not learn_delayed(anomaly, {"x": 1.0}, (0.9, None), True).learned
    assert anomaly.n_learned == 0 and anomaly.metric.cms[0].total_weight == 1  # ROCAUC took it


def test_learn_delayed_skips_the_metric_without_a_prediction():
    learner = fresh_learner()
    learn_delayed(learner, {"x": 1.0}, (None, {}), True)
    assert learner.metric.cm.total_weight == 0
    assert learner.n_learned == 1


def test_for_spec_uses_the_models_file():
    store = PendingPredictions.for_spec(
        ModelSpec(task="regression", pipeline="linear_model.LinearRegression()",
                  feedback_ttl=1.5, feedback_max_pending=3), grace=0.25)
    assert (store.ttl_ms, store.grace_ms, store.max_pending) == (1500, 250, 3)


@pytest.mark.parametrize("kind", [PENDING, EARLY, LEARNED])
def test_load_refuses_a_non_empty_store_and_wrong_types(kind):
    store = PendingPredictions(10, 10, 10)
    with pytest.raises(ValueError, match="holds"):
        store.load({(kind, "a"): "nonsense"})
