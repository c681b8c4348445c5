"""A restored learner holds the event parser's feature-name objects, as a fresh one does:
River's look-ups by an event's keys then match by identity (callgrind: +8.2% instructions
per step for a restored logistic regression before, +2.4% after)."""

import orjson

from learners import checkpoint
from learners.learner import Learner
from schemas.event import Event
from schemas.models_file import ModelSpec

KEY = b"k" * 32
WHERE = checkpoint.Where("g", "t.events", 0, "m")
SPEC = ModelSpec(task="classification",
                 pipeline="preprocessing.StandardScaler() | linear_model.LogisticRegression()")


def events(n):
    return [Event.model_validate_json(orjson.dumps({
        "event_id": f"e{i}", "model": "m", "label": i % 3 == 0,
        "features": {"amount": float(i % 7), "age": float(i % 5)}})) for i in range(n)]


def test_a_restored_learner_uses_the_parsers_feature_name_objects_and_predicts_the_same():
    learner = Learner.from_spec(SPEC, 100)
    stream = events(60)
    for e in stream[:40]:
        learner.step(e.features, e.label)
    blob = checkpoint.dump(learner, WHERE, offset=39, key=KEY, now=0.0)
    restored = checkpoint.load(blob, WHERE, key=KEY)[1]
    parsed = next(iter(stream[-1].features))  # "amount", as the parser hands it out
    scaler = restored.model["StandardScaler"]
    assert any(name is parsed for name in scaler.counts)
    assert any(name is parsed for name in restored.kinds)
    for e in stream[40:]:  # same state: bit-identical from here on
        assert restored.step(e.features, e.label).scores == learner.step(
            e.features, e.label).scores


class _Odd:
    def __reduce_ex__(self, protocol):
        raise ValueError("nope")


def test_a_copy_that_fails_in_any_way_leaves_the_model_as_it_is():
    """The copy after a transaction or a restore is an optimisation: a ValueError or a
    RecursionError from the model must not escape the step (attacker review)."""
    from river import preprocessing

    from learners.learner import _inline_copy

    odd = preprocessing.StandardScaler()
    odd.learn_one({"a": 1.0})
    odd.extra = _Odd()
    deep = preprocessing.StandardScaler()
    deep.extra = nested = []
    for _ in range(200_000):
        nested.append([])
        nested = nested[0]
    for model in (odd, deep):
        assert _inline_copy(model) is model
        assert _inline_copy(model, {"a": "a"}) is model
