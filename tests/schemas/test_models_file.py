"""The models file: bounds and one-line errors."""

import pytest

from schemas.exceptions import ConfigError
from schemas.models_file import ModelsConfig


def config(extra="", pipeline="linear_model.LogisticRegression()", task="classification"):
    return ModelsConfig.from_toml(f'[models.m]\ntask = "{task}"\npipeline = "{pipeline}"\n'
                                  + extra)


def test_defaults_of_the_hardening_settings():
    spec = config().models["m"]
    assert (spec.label_type, spec.max_label_chars, spec.max_classes, spec.scores_top_k,
            spec.max_features, spec.drift.min_effect) == (None, 256, 1000, 100, 100_000, 0.2)


@pytest.mark.parametrize(("extra", "task", "where"), [
    ('label_type = "list"\n', "classification", "label_type"),
    ('label_type = "str"\n', "regression", "label_type is for classifiers"),
    ("max_classes = 1\n", "classification", "max_classes"),
    ("max_features = 0\n", "classification", "max_features"),
    ("scores_top_k = 0\n", "classification", "scores_top_k"),
    ("[models.m.drift]\nmin_effect = 3.5\n", "classification", "min_effect"),
    ("[models.m.drift]\ndelta = nan\n", "classification", "delta"),
])
def test_bad_settings_are_one_line(extra, task, where):
    with pytest.raises(ConfigError, match=where) as caught:
        config(extra, task=task)
    assert "\n" not in str(caught.value)


def test_a_pipeline_text_beyond_the_limit_is_one_line():
    with pytest.raises(ConfigError, match="pipeline") as caught:
        config(pipeline=" | ".join(["preprocessing.StandardScaler()"] * 3000))
    assert "\n" not in str(caught.value)


def test_a_huge_or_deeply_nested_file_is_one_line():
    with pytest.raises(ConfigError, match="limit"):
        ModelsConfig.from_toml("#" * 2_000_000)
    with pytest.raises(ConfigError) as caught:
        ModelsConfig.from_toml("x = " + "[" * 5000 + "]" * 5000)
    assert "\n" not in str(caught.value)
