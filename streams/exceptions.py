"""Errors of the streaming side (services, Kafka, Redis).

>>> from streams.exceptions import ServiceError
>>> str(ServiceError("java not found"))
'java not found'
"""

from schemas.exceptions import DriftlineError


class ServiceError(DriftlineError):
    """A local service (Kafka, redis-server) could not be started or reached.

    Its message is one line telling the user what to do.
    """
