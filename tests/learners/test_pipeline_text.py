"""Pipelines are built from River's syntax, and nothing else gets through."""

import re

import pytest
from river import compose, linear_model, optim, preprocessing, tree

from learners.exceptions import PipelineSyntaxError
from learners.pipeline_text import build_pipeline, pipeline_meaning


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


@pytest.mark.parametrize(("text", "says"), [
    (" | ".join(["preprocessing.StandardScaler()"] * 3000), "characters; the limit"),
    ("|".join(["a.B()"] * 1000), "more than 64 steps"),
    ("ensemble.BaggingClassifier(linear_model.LogisticRegression(), n_models=100000000)",
     "n_models=1e+08 is beyond 1,000"),
    ("ensemble.BaggingClassifier(linear_model.LogisticRegression(), 100000000)",
     "n_models=1e+08 is beyond 1,000"),
    ("forest.ARFClassifier(n_models=5000)", "n_models=5e+03 is beyond 1,000"),
    ("linear_model.LogisticRegression(l2=1e400)", "not a finite number"),
    ("linear_model.LogisticRegression(l2=-1e400)", "not a finite number"),
    ("neighbors.KNNClassifier(n_neighbors=10**9)", "not allowed"),
    ("neighbors.KNNClassifier(n_neighbors=1000000000)", "beyond 10,000,000"),
    ("tree.HoeffdingTreeClassifier(grace_period=" + "9" * 30 + ")", "beyond"),
    ("(" * 300 + "linear_model.LogisticRegression()" + ")" * 300, "not a valid expression"),
    ("linear_model.LogisticRegression(l2=" + "[" * 40 + "]" * 40 + ")", "nested deeper"),
    ("linear_model.LogisticRegression(\x00)", "not a valid expression"),
    ("anomaly.HalfSpaceTrees(height=22)", "height=22 is beyond 16"),
    ("feature_extraction.PolynomialExtender(degree=12)", "degree=12 is beyond 5"),
    ("neighbors.KNNClassifier(engine=neighbors.SWINN(graph_k=(1, 10**9)))", "not allowed"),
    ("feature_extraction.BagOfWords(ngram_range=(1, 2000000000000000000000))", "beyond"),
])
def test_what_would_hang_or_crash_start_up_is_one_line(text, says):
    with pytest.raises(PipelineSyntaxError, match=re.escape(says)) as caught:
        build_pipeline(text)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


def test_a_pipeline_may_span_indented_lines():
    text = """
        preprocessing.StandardScaler()
        | linear_model.LogisticRegression(
              l2=0.001)
    """
    assert repr(build_pipeline(text)) == repr(build_pipeline(
        "preprocessing.StandardScaler() | linear_model.LogisticRegression(l2=0.001)"))


@pytest.mark.parametrize("same", [
    "preprocessing.StandardScaler()|linear_model.LogisticRegression()",
    "preprocessing.StandardScaler() |\n    linear_model.LogisticRegression()",
    "preprocessing.StandardScaler(with_std=True) | linear_model.LogisticRegression(l2=0.0)",
    "preprocessing.StandardScaler() | linear_model.LogisticRegression("
    "intercept_lr=0.01, l2=0.0, optimizer=optim.SGD(0.01))",
    "preprocessing.StandardScaler() | linear_model.LogisticRegression("
    "optimizer=optim.SGD(lr=0.01), l2=0)",
])
def test_the_same_pipeline_written_differently_means_the_same(same):
    base = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"
    assert pipeline_meaning(same) == pipeline_meaning(base)


@pytest.mark.parametrize("other", [
    "preprocessing.StandardScaler() | linear_model.LogisticRegression(l2=0.001)",
    "preprocessing.MinMaxScaler() | linear_model.LogisticRegression()",
    "linear_model.LogisticRegression()",
    "preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.1))",
    "preprocessing.StandardScaler(with_std=False) | linear_model.LogisticRegression()",
])
def test_a_different_pipeline_means_something_else(other):
    base = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"
    assert pipeline_meaning(other) != pipeline_meaning(base)
