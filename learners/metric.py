"""River metrics by class name, as written in the models file.

>>> make_metric("Accuracy")
Accuracy: 0.00%
>>> make_metric("eval")
Traceback (most recent call last):
...
schemas.exceptions.ConfigError: unknown metric 'eval': name a class of river.metrics, e.g. Accuracy
"""

import inspect

from river import metrics

from schemas.exceptions import ConfigError


def make_metric(name: str) -> metrics.base.Metric:
    """A fresh instance of ``river.metrics.<name>``."""
    cls = getattr(metrics, name, None) if name.isidentifier() and not name.startswith("_") else None
    if not (inspect.isclass(cls) and issubclass(cls, metrics.base.Metric)):
        raise ConfigError(f"unknown metric '{name}': name a class of river.metrics, e.g. Accuracy")
    return cls()
