"""The shape of a consumed message the processor works on, free of Faust types.

>>> r = Record("t.events", 0, 7, b"k", b"{}", 1700000000000)
>>> r.partition, r.offset
(0, 7)
"""

from typing import NamedTuple


class Record(NamedTuple):
    """One consumed Kafka message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None


class Output(NamedTuple):
    """One message to publish: topic, key, value."""

    topic: str
    key: bytes | None
    value: bytes
