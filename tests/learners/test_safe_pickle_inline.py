"""The state setter that keeps restored River objects on CPython's inline-attribute fast path
(``safe_pickle._set_state``): same state as pickle's BUILD, and no wider than it."""

import functools
import sys

import pytest
from river import linear_model, optim, preprocessing

from learners import safe_pickle
from learners.exceptions import UnsupportedObject


def _trained():
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for i in range(50):
        x = {"a": float(i), "b": float(i % 7)}
        model.predict_proba_one(x)
        model.learn_one(x, i % 3 == 0)
    return model


def test_restored_model_has_the_same_state_and_predictions():
    model = _trained()
    blob = safe_pickle.dumps(model)
    if sys.version_info < (3, 13):  # 3.13 keeps inline values anyway: plain BUILD there
        assert ("learners.safe_pickle", "_set_state") in safe_pickle.referenced_globals(blob)
    copy = safe_pickle.loads(blob)
    for original, restored in zip(model.steps.values(), copy.steps.values(), strict=True):
        assert list(vars(restored)) == list(vars(original))  # same attributes, same order
    x = {"a": 3.5, "b": 1.0}
    assert copy.predict_proba_one(x) == model.predict_proba_one(x)
    copy.learn_one(x, True)
    model.learn_one(x, True)
    assert copy.predict_proba_one(x) == model.predict_proba_one(x)


def test_state_setter_refuses_objects_build_could_not_fill_either():
    with pytest.raises(UnsupportedObject, match=r"functools\.partial"):
        safe_pickle._set_state(functools.partial(print), {"x": 1})
    with pytest.raises(UnsupportedObject, match="malformed"):
        safe_pickle._set_state(optim.SGD(), {1: 2})
    with pytest.raises(UnsupportedObject):
        safe_pickle._set_state(optim.SGD(), [("x", 1)])


def test_a_key_owned_by_a_descriptor_is_written_to_the_dict_like_build():
    sgd = optim.SGD()
    safe_pickle._set_state(sgd, {"__class__": int, "n_iterations": 7})
    assert type(sgd) is optim.SGD  # not reassigned through setattr
    assert vars(sgd)["__class__"] is int and sgd.n_iterations == 7
