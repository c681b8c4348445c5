"""Dead letters: the reason a message could not be scored, and its original payload.

A payload that is not UTF-8 is carried as base64; one over ``max_bytes`` is
cut to that prefix with its full length and SHA-256, and stays addressable by
topic, partition and offset.

>>> import orjson
>>> from streams.records import Record
>>> dl = orjson.loads(dead_letter(Record("t", 0, 5, b"k", b"not json", None),
...                               "invalid_json", "expected value", [], 1024, "now"))
>>> dl["payload"], dl["error"]["type"], dl["payload_truncated"]
('not json', 'invalid_json', False)
>>> dl = orjson.loads(dead_letter(Record("t", 0, 6, None, b"\\xff" * 10, None),
...                               "invalid_encoding", "not UTF-8", [], 4, "now"))
>>> dl["payload"], dl["payload_encoding"], dl["payload_truncated"], dl["payload_length"]
('/////w==', 'base64', True, 10)
>>> len(dead_letter(Record("t", 0, 7, None, b"\\x00" * 100_000, None), "x", "", [], 20_000,
...                 "now")) <= 20_000 + 8192
True
"""

import base64
import hashlib
from typing import Any

import orjson

from schemas.constants import DEADLETTER_KEY_BYTES, MAX_KEY_BYTES
from streams.records import Record


def _text_or_base64(data: bytes) -> tuple[str, str | None]:
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def dead_letter(record: Record, error_type: str, message: str, details: list[Any],
                max_bytes: int, at: str) -> bytes:
    """The JSON dead letter for ``record``, at most about ``max_bytes`` + 8 KiB long.

    The payload is cut to ``max_bytes``; if JSON escapes or base64 still make the letter
    too long, the prefix is cut further (its length and hash always describe the whole).
    """
    prefix = max_bytes
    while True:
        encoded = _encode(record, error_type, message, details, prefix, at)
        if len(encoded) <= max_bytes + 8192 or prefix == 0:
            return encoded
        prefix = int(prefix * max_bytes / len(encoded) * 0.9)


def _encode(record: Record, error_type: str, message: str, details: list[Any], prefix: int,
            at: str) -> bytes:
    doc: dict[str, Any] = {"topic": record.topic, "partition": record.partition,
                           "offset": record.offset}
    if record.key is None:
        doc["key"] = None
    else:
        key = record.key[:DEADLETTER_KEY_BYTES]
        doc["key"], key_encoding = _text_or_base64(key)
        if key_encoding:
            doc["key_encoding"] = key_encoding
        if len(key) < len(record.key):
            doc["key_truncated"] = True
    value = record.value
    if value is None:
        doc["payload"] = None
    else:
        truncated = len(value) > prefix
        if truncated:
            doc["payload_length"] = len(value)
            doc["payload_sha256"] = hashlib.sha256(value).hexdigest()
            value = value[:prefix]
        doc["payload"], encoding = _text_or_base64(value)
        if encoding:
            doc["payload_encoding"] = encoding
        doc["payload_truncated"] = truncated
    doc["error"] = {"type": error_type, "message": message, "details": details}
    doc["at"] = at
    return orjson.dumps(doc)


def deadletter_key(key: bytes | None) -> bytes | None:
    """The Kafka key of a dead letter: the event's, or its SHA-256 when it is too long.

    >>> deadletter_key(b"k"), len(deadletter_key(b"k" * 70_000))
    (b'k', 64)
    """
    if key is None or len(key) <= MAX_KEY_BYTES:
        return key
    return hashlib.sha256(key).hexdigest().encode()
