"""Sets inside a model iterate in the same order after a checkpoint round-trip, so features
reach the estimator in the same order and float sums stay bit-identical."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

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


# Hash seeds under which a plain pickle round trip re-lays out {'x0', 'x1', 'x2'} (checked
# on 3.11.7 and 3.13.0): before canonical_sets, the checkpoint sweep's MultinomialNB case
# failed in the last bit under them (it passed alone under other seeds; xdist workers draw
# a random seed, so it failed "once in a full run").
REORDERING_SEEDS = (14, 26, 35)
_NB = ("compose.Select('x0', 'x1', 'x2') | preprocessing.MinMaxScaler() | "
       "naive_bayes.MultinomialNB()")
_CHECK = f"""
import pickle
from river import compose, naive_bayes, preprocessing
from learners import safe_pickle
from tests.learners.estimator_sweep import events, trained
from tests.learners.test_learner_contract import river_step

keys = set(("x0", "x1", "x2"))
print(list(pickle.loads(pickle.dumps(keys))) != list(keys))  # the premise holds here
learner, probes = trained("classification", {_NB!r}, False)
restored = safe_pickle.loads(safe_pickle.dumps(learner))
reference = (compose.Select("x0", "x1", "x2") | preprocessing.MinMaxScaler()
             | naive_bayes.MultinomialNB())
for x, y in events("classification", 200):
    reference.learn_one(x, y)
for x, y in probes:
    a, b = learner.step(x, y), restored.step(x, y)
    expected = river_step(reference, "classification", x, y)
    assert repr((a.prediction, a.scores)) == repr((b.prediction, b.scores)) == repr(expected)
"""


def test_naive_bayes_after_select_restores_bit_identical_under_reordering_hash_seeds():
    root = Path(__file__).resolve().parents[2]
    premises = []
    for seed in REORDERING_SEEDS:
        out = subprocess.run([sys.executable, "-c", _CHECK], cwd=root, capture_output=True,
                             text=True, timeout=120,
                             env={**os.environ, "PYTHONHASHSEED": str(seed),
                                  "PYTHONPATH": str(root)})
        assert out.returncode == 0, f"PYTHONHASHSEED={seed}: {out.stderr[-2000:]}"
        premises.append(out.stdout.split()[0] == "True")
    assert any(premises), "no seed re-lays out the set on this Python: pick others"
