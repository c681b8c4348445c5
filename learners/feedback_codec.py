"""Checkpoint format of late-label state: one signed field per pending prediction.

A (model, partition)'s :class:`~learners.feedback.PendingPredictions` is stored as a
Redis hash written incrementally: each checkpoint sets the fields added or changed
since the previous one and deletes the removed ones (:meth:`FeedbackCodec.seal_delta`),
so its cost follows the changes, not the store's size. Field names are
``p:<event_id>`` (pending prediction), ``e:<event_id>`` (held feedback) and
``l:<event_id>`` (learned id); values are ``HMAC-SHA256 (32 bytes) | orjson body``,
the MAC also covering (group, topic, partition, model) and the field name, so a value
moved to another field, model or partition does not verify.

The learner's checkpoint binds the hash: its header carries a :class:`PendingSummary`
(field count and a keyed XOR digest of every field, kept up to date per change, plus
the partition clock). A restore verifies every field, then the count and digest, and
only then loads the store: a hash that is not exactly the one that checkpoint wrote
(a partial or stale write, a field added, dropped or replayed by hand) is refused.
Each delta also carries ``undo``, the signed previous value of every changed field,
so a restore that falls back to an older learner version can step the hash back.

>>> from learners.checkpoint import Where
>>> from learners.feedback import PendingPredictions
>>> store = PendingPredictions(ttl_ms=1000, grace_ms=100, max_pending=10)
>>> _ = store.add("e1", 5, {"x": 1.5, "n": 2}, (True, {True: 0.7, False: 0.3}), 40)
>>> codec = FeedbackCodec(b"secret", Where("g", "t.events", 0, "m"))
>>> sealed = codec.seal_delta(store.changes_since_last_checkpoint(), PendingSummary.empty(40))
>>> sorted(sealed.hset), sealed.hdel, sealed.summary.count
([b'p:e1'], [], 1)
>>> restored = PendingPredictions(ttl_ms=1000, grace_ms=100, max_pending=10)
>>> codec.restore(sealed.hset, sealed.summary, restored)
>>> restored.entries["e1"] == store.entries["e1"]
True
>>> FeedbackCodec(b"other", Where("g", "t.events", 0, "m")).restore(
...     sealed.hset, sealed.summary, PendingPredictions(1000, 100, 10))
Traceback (most recent call last):
...
learners.exceptions.CheckpointError: pending field b'p:e1' does not verify
"""

import base64
import hashlib
import hmac
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import orjson

from learners.checkpoint import Where
from learners.exceptions import CheckpointError
from learners.feedback import (
    EARLY,
    LEARNED,
    PENDING,
    Delta,
    Field,
    HeldFeedback,
    PendingEntry,
    PendingPredictions,
    pack,
)

_TAG = hashlib.sha256().digest_size
_ZERO = bytes(_TAG)
Value = PendingEntry | HeldFeedback | int


@dataclass(frozen=True, slots=True)
class PendingSummary:
    """What a learner checkpoint says about its pending hash: field count, XOR digest
    (hex), the partition's clock (ms) and the store's outcome totals, as JSON-ready
    values for its header."""

    count: int
    digest: str
    watermark: int
    totals: dict[str, int] = dataclass_field(default_factory=dict)

    @classmethod
    def empty(cls, watermark: int = -1) -> "PendingSummary":
        """The summary of an empty hash."""
        return cls(0, _ZERO.hex(), watermark)


@dataclass(frozen=True, slots=True)
class SealedDelta:
    """One checkpoint's write to the pending hash: fields to set, fields to delete, the
    previous signed values of every changed field (``None``: absent), and the summary
    of the hash once written."""

    hset: dict[bytes, bytes]
    hdel: list[bytes]
    undo: dict[bytes, bytes | None]
    summary: PendingSummary

    @property
    def nbytes(self) -> int:
        """Bytes this write sends (field names and values)."""
        return sum(len(k) + len(v) for k, v in self.hset.items()) + sum(map(len, self.hdel))


class FeedbackCodec:
    """Signs, verifies and (de)serialises the pending fields of one (model, partition).

    Parameters
    ----------
    key
        The checkpoint key (``DRIFTLINE_CHECKPOINT_KEY``); two keys are derived from it,
        one for the fields' MACs and one for the digest.
    where
        The (group, events topic, partition, model) the fields belong to.
    """

    def __init__(self, key: bytes, where: Where) -> None:
        self._mac_key = hmac.new(key, b"driftline feedback field", hashlib.sha256).digest()
        self._digest_key = hmac.new(key, b"driftline feedback digest", hashlib.sha256).digest()
        self._where = orjson.dumps([where.group, where.topic, where.partition, where.model])

    @staticmethod
    def name(field: Field) -> bytes:
        """The hash field of a store field: ``p:``/``e:``/``l:`` + event id."""
        return f"{field[0]}:{field[1]}".encode()

    def seal(self, field: Field, value: Value) -> bytes:
        """The signed value of one field."""
        body = orjson.dumps(_body(value), option=orjson.OPT_SERIALIZE_NUMPY)
        return self._tag(self.name(field), body) + body

    def open(self, name: bytes, blob: bytes) -> tuple[Field, Value]:
        """Verify one stored field and decode it. Raises CheckpointError."""
        tag, body = blob[:_TAG], blob[_TAG:]
        if len(blob) < _TAG or not hmac.compare_digest(tag, self._tag(name, body)):
            raise CheckpointError(f"pending field {name[:80]!r} does not verify")
        kind, _, event_id = name.decode().partition(":")
        try:
            return (kind, event_id), _value(kind, event_id, orjson.loads(body))
        except (ValueError, TypeError, KeyError) as exc:  # signed by us: a format bug
            raise CheckpointError(f"pending field {name[:80]!r} is not readable: {exc}") from None

    def seal_delta(self, delta: Delta, before: PendingSummary, watermark: int | None = None,
                   totals: Mapping[str, int] | None = None) -> SealedDelta:
        """Sign ``delta`` (from :meth:`PendingPredictions.changes_since_last_checkpoint`)
        for a hash whose summary is ``before``; ``watermark`` and ``totals`` (the store's)
        go in the new summary. O(changes)."""
        digest = int(before.digest, 16)
        count = before.count
        undo: dict[bytes, bytes | None] = {}
        for field, old in delta.before.items():
            name = self.name(field)
            if old is None:
                undo[name] = None
                count += 1
            else:
                undo[name] = blob = self.seal(field, old)
                digest ^= self._contribution(name, blob)
        hset = {}
        for field, value in delta.added.items():
            name = self.name(field)
            hset[name] = blob = self.seal(field, value)
            digest ^= self._contribution(name, blob)
        count -= len(delta.removed)
        hdel = [self.name(field) for field in delta.removed]
        clock = before.watermark if watermark is None else watermark
        return SealedDelta(hset, hdel, undo, PendingSummary(
            count, f"{digest:064x}", clock, dict(before.totals if totals is None else totals)))

    def seal_all(self, fields: Iterable[tuple[Field, Value]], watermark: int,
                 totals: Mapping[str, int] | None = None) -> SealedDelta:
        """A full write of a store (``store.fields()``): O(size); for a first or repair write."""
        hset = {self.name(field): self.seal(field, value) for field, value in fields}
        return SealedDelta(hset, [], {}, self.summarise(hset, watermark, totals))

    def summarise(self, stored: Mapping[bytes, bytes], watermark: int,
                  totals: Mapping[str, int] | None = None) -> PendingSummary:
        """The summary of a whole hash as stored (O(size))."""
        digest = 0
        for name, blob in stored.items():
            digest ^= self._contribution(name, blob)
        return PendingSummary(len(stored), f"{digest:064x}", watermark, dict(totals or {}))

    def restore(self, stored: Mapping[bytes, bytes], summary: PendingSummary,
                into: PendingPredictions) -> None:
        """Verify the hash ``stored`` against the learner checkpoint's ``summary`` and load
        it (and the summary's outcome totals) into the empty store ``into``. Raises
        CheckpointError, loading nothing."""
        values = dict(self.open(name, blob) for name, blob in stored.items())
        found = self.summarise(stored, summary.watermark)
        if (found.count, found.digest) != (summary.count, summary.digest):
            raise CheckpointError(f"pending hash holds {found.count} fields that do not match "
                                  f"the checkpoint's {summary.count} (digest differs)")
        into.load(values)
        into.totals = Counter(summary.totals)  # type: ignore[arg-type]

    def _tag(self, name: bytes, body: bytes) -> bytes:
        return hmac.digest(self._mac_key, b"\0".join((self._where, name, body)), "sha256")

    def _contribution(self, name: bytes, blob: bytes) -> int:
        # The field's tag already covers (where, name, body): the digest keys it again,
        # so stored values never reveal a contribution.
        return int.from_bytes(hmac.digest(self._digest_key, blob[:_TAG], "sha256"), "big")


def apply(stored: dict[bytes, bytes], hset: Mapping[bytes, bytes],
          hdel: Iterable[bytes]) -> None:
    """Apply a write (or an ``undo``, split into sets and deletes) to an in-memory hash,
    as Redis's HSET/HDEL would."""
    for name in hdel:
        stored.pop(name, None)
    stored.update(hset)


def undo_write(undo: Mapping[bytes, bytes | None]) -> tuple[dict[bytes, bytes], list[bytes]]:
    """(fields to set, fields to delete) that step a hash back over one write."""
    return ({name: blob for name, blob in undo.items() if blob is not None},
            [name for name, blob in undo.items() if blob is None])


def _body(value: Value) -> list[Any]:
    if isinstance(value, PendingEntry):
        return [value.offset, value.event_ms, list(value.names), list(value.values),
                value.prediction, None if value.classes is None else list(value.classes),
                None if value.probs is None else value.probs.tolist()]
    if isinstance(value, HeldFeedback):
        key = None if value.key is None else base64.b64encode(value.key).decode()
        return [value.label, value.offset, value.held_ms, key,
                base64.b64encode(value.value).decode()]
    return [value]


def _value(kind: str, event_id: str, body: list[Any]) -> Value:
    if kind == PENDING:
        offset, event_ms, names, values, prediction, classes, probs = body
        return PendingEntry(event_id, offset, event_ms, tuple(names), pack(values), prediction,
                            None if classes is None else tuple(classes),
                            None if probs is None else array("d", probs))
    if kind == EARLY:
        label, offset, held_ms, key, value = body
        return HeldFeedback(event_id, label, offset, held_ms,
                            None if key is None else base64.b64decode(key),
                            base64.b64decode(value))
    if kind == LEARNED:
        (at,) = body
        return int(at)
    raise ValueError(f"unknown field kind {kind!r}")
