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
