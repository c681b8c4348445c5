"""Errors of the learners package.

Every checkpoint refusal is a :class:`CheckpointError` whose ``reason`` (a short label,
used for metrics) says why: the signature, the objects inside, or the versions.

>>> from learners.exceptions import PipelineSyntaxError
>>> from schemas.exceptions import ConfigError
>>> issubclass(PipelineSyntaxError, ConfigError)
True
>>> BadSignature("checkpoint signature does not verify").reason
'signature'
"""

from schemas.exceptions import ConfigError, DriftlineError


class PipelineSyntaxError(ConfigError):
    """A pipeline string is not a safe composition of River classes."""


class CheckpointError(DriftlineError):
    """A checkpoint could not be read or written (``reason``: ``invalid`` unless a subclass
    says better)."""

    reason = "invalid"


class BadSignature(CheckpointError):
    """The HMAC does not verify (wrong key, or the blob was altered)."""

    reason = "signature"


class UnsupportedObject(CheckpointError):
    """The pickle names something outside the allow-list, or a model holds an object that
    cannot be checkpointed safely."""

    reason = "unsupported"


class VersionMismatch(CheckpointError):
    """The checkpoint was written by a format or River version this one cannot read."""

    reason = "version"

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
