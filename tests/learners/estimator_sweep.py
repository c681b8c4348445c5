"""Every River estimator the pipeline parser accepts, in a pipeline it is used in, with the
events to teach it: shared by the checkpoint sweep and the allow-list tests.

``python -m tests.learners.estimator_sweep`` prints the classes their pickles name (the
source of ``learners/safe_pickle_names.py``).
"""

import importlib
import inspect
import itertools
import random
import sys
import types
from collections.abc import Iterator
from typing import Any

from river import base, metrics
from river.datasets import synth

from learners.learner import Learner
from learners.pipeline_text import ESTIMATOR_MODULES
from schemas.models_file import ModelSpec

_HT = "tree.HoeffdingTreeClassifier(grace_period=20)"
_LR = "linear_model.LogisticRegression()"
_LIN = "linear_model.LinearRegression()"
_HTR = "tree.HoeffdingTreeRegressor(grace_period=20)"
_SC = "preprocessing.StandardScaler()"
_NUM = "compose.Select('x0', 'x1', 'x2')"

CLASSIFIERS = [
    f"{_SC} | {_LR}",
    f"{_SC} | linear_model.PAClassifier()",
    f"{_SC} | linear_model.PAClassifier(mode=0)",
    f"{_SC} | linear_model.PAClassifier(mode=2)",
    "linear_model.ALMAClassifier()",
    "linear_model.AdPredictor()",
    "linear_model.Perceptron()",
    f"{_SC} | linear_model.SoftmaxRegression()",
    "facto.FMClassifier(seed=1)",
    "facto.FFMClassifier(seed=1)",
    "facto.FwFMClassifier(seed=1)",
    "facto.HOFMClassifier(seed=1)",
    "forest.AMFClassifier(seed=1)",
    "forest.ARFClassifier(n_models=3, seed=1)",
    "ensemble.SRPClassifier(n_models=3, seed=1)",
    "naive_bayes.GaussianNB()",
    f"{_NUM} | preprocessing.MinMaxScaler() | naive_bayes.BernoulliNB()",
    f"{_NUM} | preprocessing.MinMaxScaler() | naive_bayes.ComplementNB()",
    f"{_NUM} | preprocessing.MinMaxScaler() | naive_bayes.MultinomialNB()",
    "neighbors.KNNClassifier()",
    _HT,
    "tree.HoeffdingAdaptiveTreeClassifier(grace_period=20, seed=1)",
    "tree.ExtremelyFastDecisionTreeClassifier(grace_period=20)",
    "tree.LASTClassifier()",
    "tree.SGTClassifier()",
    "tree.mondrian.MondrianTreeClassifier(seed=1)",
    f"drift.DriftRetrainingClassifier(model={_HT})",
    f"ensemble.ADWINBaggingClassifier(model={_HT}, n_models=3, seed=1)",
    f"ensemble.ADWINBoostingClassifier(model={_HT}, n_models=3, seed=1)",
    f"ensemble.AdaBoostClassifier(model={_HT}, n_models=3, seed=1)",
    f"ensemble.BOLEClassifier(model={_HT}, n_models=3, seed=1)",
    f"ensemble.BaggingClassifier(model={_HT}, n_models=3, seed=1)",
    f"ensemble.LeveragingBaggingClassifier(model={_HT}, n_models=3, seed=1)",
    f"ensemble.LeveragingBaggingClassifier(model={_HT}, n_models=3, bagging_method='subag', "
    "seed=1)",
    f"ensemble.StackingClassifier(models=[{_HT}, naive_bayes.GaussianNB()], "
    f"meta_classifier={_LR})",
    f"imblearn.HardSamplingClassifier(classifier={_LR}, size=20, p=0.5, seed=1)",
    f"imblearn.RandomOverSampler(classifier={_HT}, desired_dist={{False: 0.5, True: 0.5}}, "
    "seed=1)",
    f"imblearn.RandomUnderSampler(classifier={_HT}, desired_dist={{False: 0.5, True: 0.5}}, "
    "seed=1)",
    f"imblearn.RandomSampler(classifier={_HT}, desired_dist={{False: 0.5, True: 0.5}}, "
    "sampling_rate=0.8, seed=1)",
    f"model_selection.SuccessiveHalvingClassifier(models=[{_HT}, naive_bayes.GaussianNB()], "
    "metric=metrics.Accuracy(), budget=400)",
    f"multiclass.OneVsRestClassifier(classifier={_LR})",
]

REGRESSORS = [
    f"{_SC} | {_LIN}",
    f"{_SC} | linear_model.PARegressor()",
    "linear_model.BayesianLinearRegression()",
    "facto.FMRegressor(seed=1)",
    "facto.FFMRegressor(seed=1)",
    "facto.FwFMRegressor(seed=1)",
    "facto.HOFMRegressor(seed=1)",
    "forest.ARFRegressor(n_models=3, seed=1)",
    "forest.OXTRegressor(n_models=3, seed=1)",
    "ensemble.SRPRegressor(n_models=3, seed=1)",
    "neighbors.KNNRegressor()",
    "rules.AMRules()",
    "rules.amrules.MeanRegressor()",
    _HTR,
    "tree.HoeffdingTreeRegressor(grace_period=20, splitter=tree.splitter.QOSplitter())",
    "tree.HoeffdingAdaptiveTreeRegressor(grace_period=20, seed=1)",
    "tree.SGTRegressor()",
    "tree.mondrian.MondrianTreeRegressor(seed=1)",
    f"{_SC} | preprocessing.TargetStandardScaler(regressor={_LIN})",
    f"{_SC} | preprocessing.TargetMinMaxScaler(regressor={_LIN})",
    f"preprocessing.PredClipper(regressor={_HTR}, y_min=0.0, y_max=30.0)",
    f"ensemble.BaggingRegressor(model={_HTR}, n_models=3, seed=1)",
    f"ensemble.EWARegressor(models=[{_HTR}, compose.Pipeline({_SC}, {_LIN})])",
    f"imblearn.ChebyshevOverSampler(regressor={_HTR})",
    f"imblearn.ChebyshevUnderSampler(regressor={_HTR}, seed=1)",
    f"imblearn.HardSamplingRegressor(regressor={_HTR}, size=20, p=0.5, seed=1)",
    f"model_selection.GreedyRegressor(models=[{_HTR}, compose.Pipeline({_SC}, {_LIN})])",
    f"model_selection.SuccessiveHalvingRegressor(models=[{_HTR}, compose.Pipeline({_SC}, {_LIN})], "
    "metric=metrics.MAE(), budget=400)",
]

ANOMALY = [
    "anomaly.HalfSpaceTrees(seed=1)",
    "preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=1)",
    "anomaly.LODA(seed=1)",
    "anomaly.LocalOutlierFactor()",
    f"{_SC} | anomaly.OneClassSVM()",
]

# Transformers, each in front of a logistic regression (``mixed`` events carry a category
# and a text besides the numbers).
TRANSFORMERS = [
    ("preprocessing.AdaptiveStandardScaler()", False),
    ("preprocessing.Binarizer()", False),
    ("preprocessing.MaxAbsScaler()", False),
    ("preprocessing.MinMaxScaler()", False),
    ("preprocessing.Normalizer()", False),
    ("preprocessing.RobustScaler()", False),
    ("preprocessing.StatImputer()", False),
    ("preprocessing.PreviousImputer()", False),
    ("preprocessing.GaussianRandomProjector(n_components=2, seed=1)", False),
    ("preprocessing.SparseRandomProjector(n_components=2, seed=1)", False),
    ("feature_extraction.PolynomialExtender()", False),
    ("feature_extraction.RBFSampler(seed=1)", False),
    ("feature_extraction.RandomTreesEmbedding(n_trees=3, seed=1)", False),
    ("feature_selection.VarianceThreshold()", False),
    ("feature_selection.PoissonInclusion(p=0.5, seed=1)", False),
    ("compose.Discard('x0')", False),
    ("compose.Prefixer('p_')", False),
    ("compose.Suffixer('_s')", False),
    ("compose.Renamer({'x0': 'a'})", False),
    ("compose.TransformerUnion(preprocessing.StandardScaler(), preprocessing.MinMaxScaler())",
     False),
    ("compose.TransformerProduct(preprocessing.StandardScaler(), preprocessing.MinMaxScaler())",
     False),
    (f"{_NUM} | preprocessing.StandardScaler()", True),
    ("compose.Select('cat') | preprocessing.OneHotEncoder()", True),
    ("compose.Select('cat') | preprocessing.OrdinalEncoder() | preprocessing.StandardScaler()",
     True),
    ("compose.Select('cat') | preprocessing.FeatureHasher(n_features=8, seed=1)", True),
    ("compose.Discard('text') | compose.Grouper(transformer=compose.Pipeline("
     "compose.Discard('cat'), preprocessing.StandardScaler()), by='cat')", True),
    ("feature_extraction.BagOfWords(on='text', stop_words=['red'], ngram_range=(1, 2))", True),
    ("compose.TransformerUnion(feature_extraction.Agg(on='x0', by='cat', how=stats.Mean()), "
     "feature_extraction.TargetAgg(by='cat', how=stats.Mean()))", True),
    ("feature_extraction.BagOfWords(on='text')", True),
    ("feature_extraction.TFIDF(on='text')", True),
    ("feature_extraction.BagOfWords(on='text') | preprocessing.LDA(n_components=2, seed=1)",
     True),
]

# Estimator classes the parser accepts that no models-file entry can use, and why.
NOT_SWEPT = {
    "compose.FuncTransformer": "needs a Python function, which the models file cannot write",
    "compose.TargetTransformRegressor": "needs Python functions",
    "compose.SelectType": "needs Python types as arguments",
    "ensemble.VotingClassifier": "has no predict_proba_one, which classification scores with",
    "multiclass.OneVsOneClassifier": "has no predict_proba_one",
    "multiclass.OutputCodeClassifier": "has no predict_proba_one",
    "forest.adaptive_random_forest.BaseTreeClassifier": "a building block of ARF (no rng alone)",
    "forest.adaptive_random_forest.BaseTreeRegressor": "a building block of ARF (no rng alone)",
    "forest.online_extra_trees.ETRegressor": "a building block of OXT",
    "rules.amrules.AdaptiveRegressor": "a building block of AMRules",
    "rules.amrules.RegRule": "a building block of AMRules",
    "misc.ZstdClassifier": "needs Python 3.14",
    "model_selection.BanditClassifier": "needs a river.bandit policy, which the parser refuses",
    "model_selection.BanditRegressor": "needs a river.bandit policy, which the parser refuses",
    "preprocessing.GapEncoder": "learns from a string, not from a dict of features",
    "tree.ISOUPTreeRegressor": "multi-target: its label is a dict, Driftline's is a number",
    "forest.AMFRegressor": "predicts None before learning (a Learner issue); swept on its own",
}

# (task, pipeline, mixed events?)
SWEEP: list[tuple[str, str, bool]] = (
    [("classification", p, False) for p in CLASSIFIERS]
    + [("regression", p, False) for p in REGRESSORS]
    + [("regression", "compose.Discard('text') | tree.HoeffdingTreeRegressor(grace_period=20, "
        "leaf_prediction='mean')", True)]  # a nominal feature
    + [("anomaly", p, False) for p in ANOMALY]
    + [("classification", f"{t} | {_LR}", mixed) for t, mixed in TRANSFORMERS]
)
_WORDS = ["red", "green", "blue", "fast", "slow", "river", "kafka"]


def events(task: str, n: int, mixed: bool = False, seed: int = 4) -> Iterator[tuple[dict, Any]]:
    """``n`` labelled events for ``task`` (SEA or Friedman; no label for anomaly)."""
    source = synth.Friedman(seed=seed) if task == "regression" else synth.SEA(seed=seed)
    rng = random.Random(seed)
    for x, y in itertools.islice(source, n):
        features: dict[str, Any] = {f"x{k}": v for k, v in x.items()}
        if mixed:
            features["cat"] = rng.choice(_WORDS[:3])
            features["text"] = " ".join(rng.choices(_WORDS, k=4))
        yield features, (None if task == "anomaly" else y)


def trained(task: str, pipeline: str, mixed: bool, n: int = 200) -> tuple[Learner, list]:
    """A learner after ``n`` events, and the 50 events that follow them."""
    learner = Learner.from_spec(ModelSpec(task=task, pipeline=pipeline), cooldown=100)
    stream = list(events(task, n + 50, mixed))
    for x, y in stream[:n]:
        learner.step(x, y)
    return learner, stream[n:]


def parser_classes() -> dict[str, type]:
    """Every River class the pipeline parser accepts, by the dotted name it accepts."""
    found: dict[str, type] = {}

    def walk(module: types.ModuleType, prefix: str, root: str) -> None:
        for name in dir(module):
            obj = getattr(module, name)
            if name.startswith("_"):
                continue
            if isinstance(obj, types.ModuleType):
                if obj.__name__ == f"{module.__name__}.{name}":
                    walk(obj, f"{prefix}.{name}", root)
            elif (inspect.isclass(obj) and issubclass(obj, base.Base)
                  and obj.__module__.startswith(f"river.{root}")):
                found[f"{prefix}.{name}"] = obj

    for root in sorted(ESTIMATOR_MODULES):
        try:
            module = importlib.import_module(f"river.{root}")
        except ImportError:  # a module of another River version
            continue
        walk(module, root, root)
    return found


def metric_samples() -> Iterator[tuple[str, Any]]:
    """Every River metric class that builds without arguments, after a few updates."""
    for name in sorted(dir(metrics)):
        cls = getattr(metrics, name)
        if not (isinstance(cls, type) and issubclass(cls, metrics.base.Metric)):
            continue
        try:
            metric = cls()
        except Exception:  # abstract, or needs arguments: not nameable in the models file
            continue
        for y, p in ((True, True), (False, True), (True, False)):
            try:
                metric.update(y, {True: 0.7, False: 0.3} if not metric.requires_labels else p)
            except Exception:
                try:
                    metric.update(float(y), float(p))
                except Exception:
                    break
        yield name, metric


def learner_state_samples() -> Iterator[Learner]:
    """Learners whose own state (not the model's) names more classes: string labels,
    label-free feature and prediction watchers, a regressor's error quantile, a
    challenger (promoted once: margin 0) with its windowed metrics."""
    drift = {"features": True, "prediction": True}
    for task, pipeline, challenger in (
            ("classification", "tree.HoeffdingTreeClassifier()", _LR),
            ("regression", "linear_model.LinearRegression()", _HTR)):
        learner = Learner.from_spec(ModelSpec(task=task, pipeline=pipeline, drift=drift,
                                              challenger={"pipeline": challenger,
                                                          "margin": 0, "min_events": 50,
                                                          "window": 50}),
                                    cooldown=100)
        for x, y in events(task, 300, mixed=task == "classification"):
            learner.step(x, str(y) if task == "classification" else y)
        yield learner


if __name__ == "__main__":
    from learners import safe_pickle

    seen: set[tuple[str, str]] = set()
    for task, pipeline, mixed in SWEEP:
        try:
            learner, _ = trained(task, pipeline, mixed)
        except Exception as exc:
            sys.stderr.write(f"{pipeline}: {exc!r}\n")
            continue
        seen |= safe_pickle.referenced_globals(safe_pickle.dumps(learner))
    for _, metric in metric_samples():
        seen |= safe_pickle.referenced_globals(safe_pickle.dumps(metric))
    for sample in learner_state_samples():
        seen |= safe_pickle.referenced_globals(safe_pickle.dumps(sample))
    seen |= {(c.__module__, c.__qualname__) for c in parser_classes().values()}
    for module, name in sorted(seen):
        if module != "learners.safe_pickle" and isinstance(
                getattr(importlib.import_module(module), name, None), type):
            sys.stdout.write(f"    ({module!r}, {name!r}),\n")
