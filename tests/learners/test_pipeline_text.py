"""Pipelines are built from River's syntax, and nothing else gets through."""

import pytest
from river import compose, linear_model, optim, preprocessing, tree

from learners.exceptions import PipelineSyntaxError
from learners.pipeline_text import build_pipeline


def test_builds_the_same_model_as_river():
    built = build_pipeline("preprocessing.StandardScaler() | "
                           "linear_model.LogisticRegression(l2=0.001, optimizer=optim.SGD(0.05))")
    expected = preprocessing.StandardScaler() | linear_model.LogisticRegression(
        l2=0.001, optimizer=optim.SGD(0.05))
    assert isinstance(built, compose.Pipeline)
    assert repr(built) == repr(expected)


def test_nested_submodules_negative_numbers_and_containers():
    model = build_pipeline("tree.HoeffdingTreeClassifier(grace_period=50, delta=1e-5, "
                           "nominal_attributes=['a', 'b'])")
    assert isinstance(model, tree.HoeffdingTreeClassifier)
    assert model.nominal_attributes == ["a", "b"]
    loss = build_pipeline("linear_model.LinearRegression(loss=optim.losses.Huber(epsilon=0.5),"
                          " intercept_init=-1.5)")
    assert loss.loss.epsilon == 0.5 and loss.intercept_init == -1.5


@pytest.mark.parametrize("text", [
    "eval('1')", "__import__('os')", "linear_model.LogisticRegression.__init__()",
    "linear_model.__builtins__()", "os.system('x')", "river.linear_model.LogisticRegression()",
    "linear_model.LogisticRegression", "linear_model.LogisticRegression() + "
    "linear_model.LogisticRegression()", "linear_model.LogisticRegression(l2=x)",
    "linear_model.LogisticRegression(**{'l2': 1})", "[linear_model.LogisticRegression()]",
    "linear_model.LogisticRegression(l2=open('f'))", "datasets.Phishing()",
    "linear_model.LogisticRegression(l2=1 if True else 2)", "lambda: 1", "",
    "utils.math.sigmoid(1)", "compose.FuncTransformer(print)",
])
def test_rejected_with_a_config_error(text):
    with pytest.raises(PipelineSyntaxError):
        build_pipeline(text)


def test_bad_arguments_name_the_call():
    with pytest.raises(PipelineSyntaxError, match=r"linear_model\.LogisticRegression"):
        build_pipeline("linear_model.LogisticRegression(no_such_arg=1)")


@pytest.mark.parametrize("text", [
    "drift.datasets.airline_passengers.datasets.CreditCard()",
    "drift.datasets.airline_passengers.stream.Cache()",
    "feature_extraction.BagOfWords(stop_words=drift.datasets.synth.SEA())",
    "neural_net.MLPRegressor()", "linear_model.LogisticRegression(l2={[1]: 2})",
    "optim.SGD() | optim.SGD()",
])
def test_no_way_around_the_allow_list(text):
    with pytest.raises(PipelineSyntaxError):
        build_pipeline(text)
