"""The checkpoint identity carried in a Kafka offset commit, and the partition's log bounds.

Each commit of a partition names, in its metadata, the checkpoint of every model it
relies on: the offset that model's checkpoint reflects and a short digest of the signed
blob. Kafka keeps that string with the committed offset (its ``offset.metadata.max.bytes``
defaults to 4096), so the group's committed position and the checkpoints it was made
from cannot drift apart silently: on assignment the worker reads both back and refuses a
chain Redis no longer has, or one older than the commit names.

The format is compact JSON: ``{"v":1,"m":{"<model>":[<offset>,"<digest>"]}}``.

>>> ids = {"fraud": Identity(41, digest(b"blob"))}
>>> text = encode(ids); text
'{"v":1,"m":{"fraud":[41,"fa2c8cc4f28176bb"]}}'
>>> decode(text) == ids
True
>>> decode(""), decode("not json")
(None, None)
"""

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import TopicPartition

log = logging.getLogger(__name__)

METADATA_VERSION = 1
#: Kafka's default ``offset.metadata.max.bytes``; we stay well below it.
MAX_METADATA_BYTES = 4000
_DIGEST_BYTES = 8


@dataclass(frozen=True, slots=True)
class Identity:
    """One model's checkpoint as a commit names it: the offset it reflects and the first
    8 bytes (hex) of the SHA-256 of its signed blob."""

    offset: int
    digest: str


@dataclass(frozen=True, slots=True)
class LogPosition:
    """What Kafka says about one partition at assignment.

    ``committed``: the group's committed offset (next to read) or None;
    ``named``: the checkpoints its metadata names (None: no Driftline metadata, e.g. a
    commit made before this format or with checkpoints off); ``start``/``end``: the log
    start offset and the offset the next record will get.
    """

    committed: int | None
    named: dict[str, Identity] | None
    start: int
    end: int


def digest(blob: bytes) -> str:
    """The short digest of a signed checkpoint blob (16 hex characters)."""
    return hashlib.sha256(blob).digest()[:_DIGEST_BYTES].hex()


def encode(ids: dict[str, Identity]) -> str:
    """The commit metadata naming ``ids``; raises ValueError above 4000 bytes (too many
    models for Kafka's default limit)."""
    text = orjson.dumps({"v": METADATA_VERSION,
                         "m": {m: [i.offset, i.digest] for m, i in sorted(ids.items())}}
                        ).decode()
    if len(text) > MAX_METADATA_BYTES:
        raise ValueError(f"commit metadata of {len(ids)} models is {len(text)} bytes, "
                         f"above {MAX_METADATA_BYTES}")
    return text


def decode(text: str | None) -> dict[str, Identity] | None:
    """The checkpoints a commit's metadata names, or None when it is not Driftline's."""
    if not text:
        return None
    try:
        data: Any = orjson.loads(text)
        if data.get("v") != METADATA_VERSION:
            return None
        return {str(m): Identity(int(o), str(d)) for m, (o, d) in data["m"].items()}
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return None


async def read_position(consumer: object, tp: TopicPartition) -> LogPosition | None:
    """The committed offset with its metadata, and the log bounds, of ``tp``; None for a
    consumer that is not aiokafka's (in-memory stand-ins of unit tests).

    aiokafka's public ``committed()`` drops the metadata, so this reads it through the
    group coordinator's ``fetch_committed_offsets`` (the one private call, kept here).
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or not hasattr(consumer, "beginning_offsets"):
        return None
    committed = (await coordinator.fetch_committed_offsets([tp])).get(tp)
    start = (await consumer.beginning_offsets([tp]))[tp]  # type: ignore[attr-defined]
    end = (await consumer.end_offsets([tp]))[tp]  # type: ignore[attr-defined]
    if committed is None or committed.offset < 0:
        return LogPosition(None, None, start, end)
    return LogPosition(committed.offset, decode(committed.metadata), start, end)
