"""The root of every exception Driftline raises on purpose.

Each package adds its own in its ``exceptions`` module, all subclasses of
:class:`DriftlineError`, so a caller can catch everything Driftline means
with one ``except``.

>>> from schemas.exceptions import ConfigError, DriftlineError
>>> issubclass(ConfigError, DriftlineError)
True
"""


class DriftlineError(Exception):
    """Base class of all Driftline errors."""


class ConfigError(DriftlineError):
    """The configuration (environment or models file) is not acceptable.

    The message is one line that names the offending part, fit to print at
    start-up before exiting non-zero.
    """
