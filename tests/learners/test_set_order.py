"""Sets inside a model iterate in the same order after a checkpoint round-trip, so features
reach the estimator in the same order and float sums stay bit-identical."""

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st
from river import compose

from learners import safe_pickle
from learners.pipeline_text import build_pipeline
from learners.set_order import canonical_sets

# Integers hash to themselves (no PYTHONHASHSEED): a set that plain pickle re-lays out.
KEYS = (0, 3, 11)


def test_plain_pickle_changes_this_sets_order():
    # the premise of the tests below: without canonical_sets the order changes
    assert list(pickle.loads(pickle.dumps(set(KEYS)))) != list(set(KEYS))


def test_select_emits_features_in_the_same_order_after_restore():
    select = build_pipeline("compose.Select(0, 3, 11)")
    restored = safe_pickle.loads(safe_pickle.dumps(select))
    x = {k: float(k) for k in (*KEYS, 5)}
    assert list(restored.transform_one(x)) == list(select.transform_one(x))


def test_sets_in_nested_containers_are_refilled_in_place():
    inner = set(KEYS)
    model = compose.Select(*KEYS)
    model.extra = {"by": [(1, inner)]}  # as River keeps sets in dicts of lists
    assert canonical_sets(model) is model
    assert model.extra["by"][0][1] is inner and inner == set(KEYS)
    assert list(inner) == list(model.keys) == list(set([0, 11, 3]))  # in repr order


def test_a_set_of_other_objects_is_left_as_it_is():
    class Thing:
        def __repr__(self):
            raise AssertionError("repr is not called")

    things = {Thing() for _ in range(5)}
    order = list(things)
    canonical_sets({"things": things})
    assert list(things) == order


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(-50, 50), st.text(max_size=3)), max_size=30))
def test_round_trip_keeps_any_sets_order(elements):
    built = canonical_sets(compose.Select(*elements))
    restored = safe_pickle.loads(safe_pickle.dumps(built))
    assert restored.keys == built.keys
    assert list(restored.keys) == list(built.keys)
