"""Errors of the learners package.

>>> from learners.exceptions import PipelineSyntaxError
>>> from schemas.exceptions import ConfigError
>>> issubclass(PipelineSyntaxError, ConfigError)
True
"""

from schemas.exceptions import ConfigError, DriftlineError


class PipelineSyntaxError(ConfigError):
    """A pipeline string is not a safe composition of River classes."""


class CheckpointError(DriftlineError):
    """A checkpoint could not be read: bad signature, format or version."""


class EventRefused(DriftlineError):
    """A learner refused an event before touching anything.

    ``reason`` is the dead letter's error type (``invalid_event`` or ``invalid_label``).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ModelError(DriftlineError):
    """Learning an event failed; the learner was put back exactly as it was before it.

    ``unhealthy`` names why the learner had to be restored instead (its state could not
    be put back), or is None.
    """

    def __init__(self, message: str, unhealthy: str | None = None) -> None:
        super().__init__(message)
        self.unhealthy = unhealthy
