"""Champion / challenger inside a Learner: one promotion after a concept drift, served
predictions bit-identical to two plain River models swapped at the same event, the
pair checkpointed bit-identically, a failing challenger never touching the champion."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import linear_model, preprocessing, tree
from river.datasets import synth

from learners import checkpoint
from learners.challenger import Challenger
from learners.learner import Learner, class_key
from learners.registry import ModelRegistry
from schemas.exceptions import ConfigError
from schemas.models_file import ChallengerSpec, ModelsConfig, ModelSpec

LINEAR = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"
TREE = "tree.HoeffdingTreeClassifier(grace_period=50)"
DRIFT_AT = 3000


def sea_then_xor(n: int, seed: int = 1) -> list[tuple[dict, bool]]:
    """SEA (a linear concept) for ``DRIFT_AT`` events, then XOR of x0 > 5 and x1 > 5."""
    out = []
    for i, (x, y) in enumerate(itertools.islice(synth.SEA(variant=0, seed=seed), n)):
        x = {f"x{k}": v for k, v in x.items()}
        out.append((x, y if i < DRIFT_AT else (x["x0"] > 5) != (x["x1"] > 5)))
    return out


def spec(promote_on: str = "drift", pipeline: str = TREE, **kw) -> ModelSpec:
    return ModelSpec(task="classification", pipeline=LINEAR, challenger=ChallengerSpec(
        pipeline=pipeline, promote_on=promote_on, window=500, min_events=500, **kw))


@pytest.mark.parametrize("promote_on", ["drift", "always"])
def test_tree_challenger_is_promoted_once_and_served_like_river_swapped_there(promote_on):
    events = sea_then_xor(8000)
    learner = Learner.from_spec(spec(promote_on), cooldown=1000)
    steps = [learner.step(x, y) for x, y in events]
    promotions = [i for i, s in enumerate(steps) if s.promoted is not None]
    assert len(promotions) == 1
    swap = promotions[0]
    assert DRIFT_AT < swap < DRIFT_AT + 1500, swap
    promoted = steps[swap].promoted
    assert promoted.challenger - promoted.champion >= 0.02
    assert promoted.n_compared >= 500
    assert [s.generation for s in steps] == [0] * (swap + 1) + [1] * (len(steps) - swap - 1)
    # the reference: two plain River models fed every event; the second served after swap
    champion = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    challenger = tree.HoeffdingTreeClassifier(grace_period=50)
    for i, ((x, y), step) in enumerate(zip(events, steps, strict=True)):
        served = champion if i <= swap else challenger
        proba = served.predict_proba_one(x)
        expected = {class_key(c): p for c, p in proba.items()} if proba else {}
        assert step.scores == expected, i
        if proba:
            assert step.prediction == max(proba, key=proba.get), i
        champion.learn_one(x, y)
        challenger.learn_one(x, y)
    assert type(learner.model).__name__ == "HoeffdingTreeClassifier"
    assert learner.challenger.n_learned == len(events) - swap - 1  # a fresh one since


def test_no_promotion_without_a_drift_alert_when_promote_on_drift():
    events = sea_then_xor(DRIFT_AT)  # one concept only
    learner = Learner.from_spec(spec("drift", margin=0.0), cooldown=1000)
    assert not any(learner.step(x, y).promoted for x, y in events)
    assert learner.challenger.n_compared > 2000 and not learner.challenger.armed


@pytest.mark.parametrize("at", [2000, 5000])  # before and after the promotion
def test_checkpoint_round_trip_is_bit_identical(at):
    events = sea_then_xor(at + 300)
    learner = Learner.from_spec(spec(), cooldown=1000)
    for x, y in events[:at]:
        learner.step(x, y)
    assert learner.challenger.generation == (0 if at < DRIFT_AT else 1)
    where = checkpoint.Where(group="g", topic="t", partition=0, model="m")
    blob = checkpoint.dump(learner, where, offset=at - 1, key=b"k" * 32, now=0.0)
    _, restored = checkpoint.load(blob, where, key=b"k" * 32)
    assert restored.challenger.view() == learner.challenger.view()
    assert repr(list(restored.challenger.champion_window.window)) == repr(
        list(learner.challenger.champion_window.window))
    for x, y in events[at:]:  # both models answer and go on learning identically (repr: exact)
        challengers = (restored.challenger.model.predict_proba_one(x),
                       learner.challenger.model.predict_proba_one(x))
        assert repr(challengers[0]) == repr(challengers[1])
        a, b = learner.step(x, y), restored.step(x, y)
        assert repr((a.prediction, a.scores, a.version, a.generation, a.promoted)) == repr(
            (b.prediction, b.scores, b.version, b.generation, b.promoted))
    assert restored.challenger.view() == learner.challenger.view()


class _Raises:
    """A stand-in challenger model failing on purpose (``when``: predict or learn)."""

    def __init__(self, when: str) -> None:
        self.when = when

    def predict_proba_one(self, x):
        if self.when == "predict":
            raise RuntimeError("boom")
        return {True: 0.5, False: 0.5}

    def learn_one(self, x, y):
        if self.when == "learn":
            raise RuntimeError("boom")


@pytest.mark.parametrize("when", ["predict", "learn"])
def test_a_failing_challenger_is_skipped_and_never_touches_the_champion(when):
    events = sea_then_xor(300)
    alone = Learner.from_spec(ModelSpec(task="classification", pipeline=LINEAR), cooldown=100)
    paired = Learner.from_spec(spec(), cooldown=100)
    failed = 0
    for x, y in events:
        paired.challenger.model = _Raises(when)
        step, ref = paired.step(x, y), alone.step(x, y)
        assert (step.prediction, step.scores, step.version) == (
            ref.prediction, ref.scores, ref.version)
        assert step.challenger_failed and step.promoted is None
        failed += 1
    assert paired.challenger.n_failed == failed == len(events)
    assert repr(paired.model.predict_proba_one(events[0][0])) == repr(
        alone.model.predict_proba_one(events[0][0]))


@given(margin=st.floats(0, 1), champion=st.lists(st.booleans(), min_size=1, max_size=30),
       challenger=st.lists(st.booleans(), min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_promotes_exactly_when_better_by_the_margin_over_the_window(margin, champion,
                                                                    challenger):
    """With right/wrong guesses given, the verdict is the definition, event by event."""
    n = min(len(champion), len(challenger))
    c = Challenger(ChallengerSpec(pipeline=TREE, margin=margin, min_events=5, window=4,
                                  promote_on="always"), "classification", "Accuracy")
    for i in range(n):
        c._guess = lambda x, i=i: challenger[i]  # right (True) or wrong
        promoted = c.step({"x": 1.0}, True, champion[i], drifted=False)
        recent = range(max(0, i - 3), i + 1)
        lead = (sum(challenger[j] for j in recent) - sum(champion[j] for j in recent)) / len(
            recent)
        expected = i + 1 >= 5 and lead > 0 and lead >= margin
        assert (promoted is not None) == expected, (i, lead)
        if promoted is not None:
            assert promoted.challenger - promoted.champion == pytest.approx(lead)
            break


def test_models_file_errors_are_one_line():
    bad = [
        ('task = "anomaly"\npipeline = "anomaly.HalfSpaceTrees()"', "challenger]\n"
         'pipeline = "anomaly.HalfSpaceTrees()"', "anomaly models cannot have one"),
        (f'task = "classification"\npipeline = "{LINEAR}"', 'challenger]\npipeline = '
         '"linear_model.LinearRegression()"', "does not end in a River Classifier"),
        (f'task = "classification"\npipeline = "{LINEAR}"', 'challenger]\npipeline = '
         '"__import__(\'os\')"', "model 'm' challenger: '__import__' is not allowed"),
    ]
    for model, challenger, message in bad:
        text = f"[models.m]\n{model}\n[models.m.{challenger}\n"
        with pytest.raises(ConfigError, match=message) as info:
            ModelRegistry(ModelsConfig.from_toml(text), cooldown=100)
        assert "\n" not in str(info.value)


def test_adopt_keeps_the_promoted_model_and_follows_the_file():
    events = sea_then_xor(5000)
    learner = Learner.from_spec(spec(), cooldown=1000)
    for x, y in events:
        learner.step(x, y)
    promoted = learner.model
    assert learner.adopt(spec(margin=0.1), cooldown=1000)
    assert learner.model is promoted
    assert learner.challenger.generation == 1 and learner.challenger.n_compared > 0
    assert learner.adopt(spec(pipeline="naive_bayes.GaussianNB()"), cooldown=1000)
    assert learner.challenger.n_learned == 0 and learner.challenger.generation == 1
    assert learner.adopt(ModelSpec(task="classification", pipeline=LINEAR), cooldown=1000)
    assert learner.challenger is None and learner.model is promoted


def test_late_labels_teach_the_challenger_and_can_promote_it():
    """Labels joined late (``Learner.learn_late``) reach the challenger like inline ones:
    it learns each once, in join order, and is promoted after the drift; the champion
    learns them through the same path (n_learned, the drift watcher)."""
    events = sea_then_xor(8000)
    learner = Learner.from_spec(spec("always"), cooldown=1000)
    reference = tree.HoeffdingTreeClassifier(grace_period=50)
    delay, scored, promoted_at = 20, [], None
    for i, (x, _) in enumerate(events):
        step = learner.step(x, None)
        assert not step.learned and step.promoted is None
        scored.append((step.prediction, step.proba))
        if i >= delay:
            x_late, y_late = events[i - delay]
            late = learner.learn_late(x_late, y_late, *scored[i - delay])
            assert late.learned
            if promoted_at is None:
                reference.learn_one(x_late, y_late)
            if late.promoted is not None:
                assert promoted_at is None, "promoted twice"
                promoted_at = i
                assert learner.model is not None
                probe = events[0][0]
                assert learner.model.predict_proba_one(probe) == reference.predict_proba_one(
                    probe)
    assert promoted_at is not None and DRIFT_AT < promoted_at < DRIFT_AT + 2000, promoted_at
    assert learner.n_learned == len(events) - delay
    assert learner.n_scored == len(events)
    assert type(learner.model).__name__ == "HoeffdingTreeClassifier"
