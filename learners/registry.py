"""All configured models, checked once at start-up, handing out fresh learners.

>>> from schemas.models_file import ModelsConfig
>>> registry = ModelRegistry(ModelsConfig.default(), cooldown=1000)
>>> registry.names, type(registry.new_learner("default").model).__name__
(('default',), 'Pipeline')
"""

from river import base, metrics

from learners.challenger import rolling_metric
from learners.checkpoint import check_checkpointable
from learners.learner import Learner
from learners.metric import make_metric
from learners.pipeline_text import build_pipeline
from schemas.exceptions import ConfigError
from schemas.models_file import ModelsConfig

_TASK_TYPES = {"classification": base.Classifier, "regression": base.Regressor,
               "anomaly": base.AnomalyDetector}


def _metric_fits(metric: metrics.base.Metric, model: object) -> bool:
    """River's own check that ``metric`` can score ``model``'s predictions."""
    try:
        return bool(metric.works_with(model))
    except Exception:  # a metric without a usable check is given the benefit of the doubt
        return True


def _check(who: str, pipeline: str, task: str, metric_name: str) -> None:
    """Build ``pipeline`` and metric ``metric_name`` once: a one-line ConfigError naming
    ``who`` (e.g. ``model 'm'``) when either cannot be built or they do not fit ``task``."""
    try:
        model = build_pipeline(pipeline)
        metric = make_metric(metric_name)
    except ConfigError as exc:
        raise ConfigError(f"models file: {who}: {exc}") from None
    except Exception as exc:  # whatever building River objects raises: one line
        raise ConfigError(f"models file: {who}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
    if not isinstance(model, _TASK_TYPES[task]):
        raise ConfigError(f"models file: {who}: the pipeline does not end in a River "
                          f"{_TASK_TYPES[task].__name__}, as task '{task}' needs")
    if not _metric_fits(metric, model):
        raise ConfigError(f"models file: {who}: metric '{metric_name}' does not "
                          f"work with a {task} model")


class ModelRegistry:
    """Validates every model of a :class:`ModelsConfig` and builds learners for it.

    Each model must also be checkpointable safely (:func:`learners.checkpoint.
    check_checkpointable` on a fresh learner: a real round trip through the allow-list,
    under 1 ms per model), so a model that could never be restored is refused at start-up,
    before any event is consumed, whether or not checkpoints are on (a worker started
    without them may be restarted with them).

    Raises:
        ConfigError: one line naming the model and what is wrong with it.
    """

    def __init__(self, config: ModelsConfig, cooldown: int) -> None:
        self.config = config
        self.cooldown = cooldown
        for name, spec in config.models.items():
            _check(f"model '{name}'", spec.pipeline, spec.task, spec.metric)
            if spec.challenger is not None:
                _check(f"model '{name}' challenger", spec.challenger.pipeline, spec.task,
                       spec.metric)
                try:
                    rolling_metric(spec.metric, spec.challenger.window)
                except ValueError:
                    raise ConfigError(f"models file: model '{name}': metric '{spec.metric}' "
                                      "cannot be computed over a window (it cannot be "
                                      "reverted), as a challenger needs") from None
            check_checkpointable(name, Learner.from_spec(spec, cooldown))
        self.names = tuple(config.models)

    def new_learner(self, name: str) -> Learner:
        """A learner with a fresh, unfitted model for ``name``."""
        return Learner.from_spec(self.config.models[name], self.cooldown)
