"""The models file (TOML): which River pipeline serves each model name.

>>> cfg = ModelsConfig.from_toml('''
... [models.fraud]
... task = "classification"
... pipeline = "preprocessing.StandardScaler() | linear_model.LogisticRegression(l2=0.001)"
... [models.fraud.drift]
... on_drift = "reset"
... ''')
>>> spec = cfg.models["fraud"]
>>> spec.metric, spec.drift.delta, spec.drift.on_drift
('Accuracy', 0.002, 'reset')
>>> ModelsConfig.from_toml('''
... [models.m]
... task = "regression"
... pipeline = "linear_model.LinearRegression()"
... [models.m.challenger]
... pipeline = "tree.HoeffdingTreeRegressor()"
... ''').models["m"].challenger.min_events
1000
>>> ModelsConfig.default().models["default"].task
'classification'
"""

import tomllib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.constants import (
    DEFAULT_MODEL,
    DEFAULT_PIPELINE,
    MAX_MODELS_FILE_CHARS,
    MAX_PIPELINE_CHARS,
)
from schemas.exceptions import ConfigError

Task = Literal["classification", "regression", "anomaly"]
LabelType = Literal["bool", "int", "float", "str"]
_DEFAULT_METRIC: dict[str, str] = {
    "classification": "Accuracy", "regression": "MAE", "anomaly": "ROCAUC"}


class DriftSpec(BaseModel):
    """How ADWIN watches a model and what happens when it sees it get worse."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delta: float = Field(0.002, gt=0, lt=1)
    on_drift: Literal["none", "reset"] = "none"
    #: Smallest confirmed rise of the watched signal (an error rate, or the share of
    #: errors above their running 90th percentile), as Cohen's h between the two
    #: proportions: 0.2 is a "small" effect (an error rate from 1% to 4%, 10% to 17%).
    min_effect: float = Field(0.2, ge=0, le=3.2)
    #: Watch the input features' distributions (no labels needed).
    features: bool = False
    #: Watch the distribution of the model's own predictions.
    prediction: bool = False
    #: Features watched at most per model (the first seen): the issue's ``drift_max_features``.
    max_features: int = Field(50, gt=0, le=10_000)
    #: Alerts of this model whose event times lie within this many seconds of an
    #: incident's first alert are that incident.
    incident_window: float = Field(600.0, gt=0)


class ChallengerSpec(BaseModel):
    """A challenger pipeline that learns beside the model and replaces it when better.

    ``margin`` is in the model's metric units (better means higher when the metric's
    ``bigger_is_better``, else lower); ``window``: the recent labelled events both
    metrics are computed over; ``min_events``: labelled events compared before a
    promotion may happen; ``promote_on``: ``always`` (whenever better by the margin)
    or ``drift`` (only once the model's own drift alert has fired).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline: str = Field(min_length=1, max_length=MAX_PIPELINE_CHARS)
    margin: float = Field(0.02, ge=0)
    min_events: int = Field(1_000, ge=1, le=100_000_000)
    window: int = Field(1_000, ge=1, le=100_000)
    promote_on: Literal["drift", "always"] = "always"


class ModelSpec(BaseModel):
    """One model: its task, River pipeline (River's own syntax) and metric."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Task
    pipeline: str = Field(min_length=1, max_length=MAX_PIPELINE_CHARS)
    metric: str = ""
    drift: DriftSpec = DriftSpec()
    #: The type of a classifier's labels; by default fixed by the first label learned.
    label_type: LabelType | None = None
    max_label_chars: int = Field(256, ge=1, le=65_536)
    max_classes: int = Field(1_000, ge=2, le=100_000)
    scores_top_k: int = Field(100, ge=1, le=100_000)
    max_features: int = Field(100_000, ge=1, le=10_000_000)
    #: Late labels: seconds of event time an unlabelled prediction waits for its feedback,
    #: and how many may wait per partition (the oldest is evicted first); 0 turns late
    #: labels off for the model (no unlabelled prediction is kept: a model whose labels
    #: always come inline, or never, pays nothing for them).
    feedback_ttl: float = Field(86_400.0, gt=0)
    feedback_max_pending: int = Field(1_000_000, ge=0)
    #: A challenger pipeline (classification and regression models).
    challenger: ChallengerSpec | None = None

    @model_validator(mode="after")
    def _default_metric(self) -> "ModelSpec":
        if not self.metric:
            object.__setattr__(self, "metric", _DEFAULT_METRIC[self.task])
        if self.label_type is not None and self.task != "classification":
            raise ValueError(f"label_type is for classifiers; task '{self.task}' fixes it")
        if self.challenger is not None and self.task == "anomaly":
            raise ValueError("a challenger needs labelled events to be compared on; "
                             "anomaly models cannot have one")
        return self


class ModelsConfig(BaseModel):
    """All configured models by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[str, ModelSpec] = Field(min_length=1)

    @classmethod
    def default(cls) -> "ModelsConfig":
        """The built-in configuration: one logistic-regression model, ``default``."""
        return cls(models={DEFAULT_MODEL: ModelSpec(task="classification",
                                                    pipeline=DEFAULT_PIPELINE)})

    @classmethod
    def from_toml(cls, text: str) -> "ModelsConfig":
        """Parse a models file; any problem is one line in a :class:`ConfigError`."""
        if len(text) > MAX_MODELS_FILE_CHARS:
            raise ConfigError(f"models file has {len(text)} characters; the limit is "
                              f"{MAX_MODELS_FILE_CHARS}")
        try:
            data = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"models file is not valid TOML: {first}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "top level"
            raise ConfigError(f"models file: {where}: {first['msg']}") from None
