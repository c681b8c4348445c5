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
>>> ModelsConfig.default().models["default"].task
'classification'
"""

import tomllib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.constants import DEFAULT_MODEL, DEFAULT_PIPELINE
from schemas.exceptions import ConfigError

Task = Literal["classification", "regression", "anomaly"]
_DEFAULT_METRIC: dict[str, str] = {
    "classification": "Accuracy", "regression": "MAE", "anomaly": "ROCAUC"}


class DriftSpec(BaseModel):
    """How ADWIN watches a model and what happens when it sees it get worse."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delta: float = Field(0.002, gt=0, lt=1)
    on_drift: Literal["none", "reset"] = "none"


class ModelSpec(BaseModel):
    """One model: its task, River pipeline (River's own syntax) and metric."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Task
    pipeline: str = Field(min_length=1)
    metric: str = ""
    drift: DriftSpec = DriftSpec()
    #: Late labels: seconds of event time an unlabelled prediction waits for its feedback,
    #: and how many may wait per partition (the oldest is evicted first).
    feedback_ttl: float = Field(86_400.0, gt=0)
    feedback_max_pending: int = Field(1_000_000, gt=0)

    @model_validator(mode="after")
    def _default_metric(self) -> "ModelSpec":
        if not self.metric:
            object.__setattr__(self, "metric", _DEFAULT_METRIC[self.task])
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
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"models file is not valid TOML: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "top level"
            raise ConfigError(f"models file: {where}: {first['msg']}") from None
