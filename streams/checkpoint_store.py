"""Signed checkpoints in Redis: the last K versions per (group, topic, partition, model).

Keys start with ``prefix`` (``DRIFTLINE_REDIS_PREFIX``, default ``driftline``).
Layout: a list per model, newest first (``LPUSH`` + ``LTRIM``), and a hash per
partition holding each model's last written offset. A Lua script writes a
partition's models atomically.

Nothing unsigned here decides what is restored, nor (but for one token) what is written.
The token is the digest of a pending-predictions hash (late labels), a compare-and-set
guard for its incremental writes: a wrong one only makes the next write a full one. The
offsets hash is informational (``checkpoints list``, operators); writes are not refused
by it (someone setting it to 1e15 used to stop every write). Which version is valid is decided at
restore, from signed headers only: newest first, the first that verifies and is not
older than the checkpoint the group's Kafka commit names (see
:mod:`streams.commit_metadata`); a stale write of a worker that lost the partition is
older than that and is passed over. A rollback (``checkpoints rollback``/``push``)
leaves a signed marker the worker honours once.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from learners import checkpoint
from learners.checkpoint import Header, Where
from learners.exceptions import CheckpointError
from learners.learner import Learner
from schemas.constants import REDIS_PREFIX
from streams.commit_metadata import digest

log = logging.getLogger(__name__)

# KEYS: offsets hash (informational), then one versions list per model.
# ARGV: keep, then (model, offset, blob) per model. Writes every model; returns 0.
_SAVE = """
local keep = tonumber(ARGV[1])
for i = 2, #KEYS do
  redis.call('LPUSH', KEYS[i], ARGV[3 * i - 2])
  redis.call('LTRIM', KEYS[i], 0, keep - 1)
  redis.call('HSET', KEYS[1], ARGV[3 * i - 4], ARGV[3 * i - 3])
end
return 0
"""
#: Bytes per second a checkpoint write is given on top of the client's socket timeout, so
#: a big checkpoint is not cut off by a timeout meant for small commands.
WRITE_BANDWIDTH = 10_000_000
#: Refusals logged per model and restore; the rest are counted in one line.
_WARNINGS_PER_MODEL = 3

# Late labels (issue 13): the same write, plus each model's pending-predictions hash,
# applied only on the hash the delta was made for: a hash's content digest (its signed
# summary's) is kept beside it (unsigned, a compare-and-set token only); a delta whose base
# is not the stored digest (a zombie wrote meanwhile, a lost reply) is refused with its
# blob, and the writer's next write of that model is a full one (DEL, then every field).
# KEYS: offsets hash, digests hash, then (versions list, pending hash) per model.
# ARGV: keep, then per model: model, offset, blob, full (0/1), base digest, new digest,
# #set, #del, #set (field, value) pairs, #del fields. Returns the refused models.
_SAVE_PENDING = """
local keep = tonumber(ARGV[1])
local refused = {}
local a = 2
for i = 3, #KEYS, 2 do
  local model = ARGV[a]
  local full = ARGV[a + 3] == '1'
  local nset = tonumber(ARGV[a + 6])
  local ndel = tonumber(ARGV[a + 7])
  local first = a + 8
  if full or redis.call('HGET', KEYS[2], model) == ARGV[a + 4] then
    redis.call('LPUSH', KEYS[i], ARGV[a + 2])
    redis.call('LTRIM', KEYS[i], 0, keep - 1)
    redis.call('HSET', KEYS[1], model, ARGV[a + 1])
    if full then
      redis.call('DEL', KEYS[i + 1])
    end
    for j = 0, ndel - 1, 1000 do
      local last = math.min(j + 1000, ndel) - 1
      redis.call('HDEL', KEYS[i + 1], unpack(ARGV, first + 2 * nset + j, first + 2 * nset + last))
    end
    for j = 0, nset - 1, 500 do
      local last = math.min(j + 500, nset) - 1
      redis.call('HSET', KEYS[i + 1], unpack(ARGV, first + 2 * j, first + 2 * last + 1))
    end
    redis.call('HSET', KEYS[2], model, ARGV[a + 5])
  else
    refused[#refused + 1] = model
  end
  a = first + 2 * nset + ndel
end
return refused
"""


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """One model's pending-hash write (``learners/feedback_codec.py``): the feedback
    offset its blob reflects, fields to set and delete, whether to replace the hash
    (``full``), and the hash's digest before (``base``) and after the write."""

    feedback_offset: int
    hset: dict[bytes, bytes]
    hdel: list[bytes]
    full: bool
    base: str
    after: str

    @property
    def nbytes(self) -> int:
        """Bytes this write sends (field names and values)."""
        return sum(len(k) + len(v) for k, v in self.hset.items()) + sum(map(len, self.hdel))


@dataclass
class Restored:
    """What a restore found for one partition."""

    learners: dict[str, tuple[int, Learner]] = field(default_factory=dict)
    rejected: list[tuple[str, int, str]] = field(default_factory=list)
    #: Each refusal itself (``.reason``: signature / unsupported / version / invalid).
    refusals: list[tuple[str, int, CheckpointError]] = field(default_factory=list)
    #: Digest (:func:`streams.commit_metadata.digest`) of each restored model's blob.
    digests: dict[str, str] = field(default_factory=dict)
    #: When each restored model's checkpoint (or, in ``older``, the older one) was written
    #: (epoch seconds, its header's ``created_at``): the checkpoint age starts there.
    created_at: dict[str, float] = field(default_factory=dict)
    #: Models whose only verifying versions are older than the commit named:
    #: model -> (offset, learner, digest) of the newest of them.
    older: dict[str, tuple[int, Learner, str]] = field(default_factory=dict)
    #: Models in ``older`` whose newer versions were there but refused (corrupt).
    fallback: set[str] = field(default_factory=set)
    #: Models restored from an older version because ``driftline checkpoints rollback``
    #: asked for it.
    rolled_back: set[str] = field(default_factory=set)
    #: Late labels: the ``feedback`` header object of each restored model that has one
    #: (of its ``older`` version while no newer one is taken).
    feedback: dict[str, dict] = field(default_factory=dict)


class CheckpointStore:
    """Read and write one consumer group's checkpoints of one events topic."""

    def __init__(self, client: aioredis.Redis, key: bytes, keep: int, group: str,
                 topic: str, prefix: str = REDIS_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self.key = key
        self.keep = keep
        self.group = group
        self.topic = topic
        self._save = client.register_script(_SAVE)
        self._save_pending = client.register_script(_SAVE_PENDING)

    def where(self, partition: int, model: str) -> Where:
        """The identity a checkpoint of (partition, model) is signed with."""
        return Where(self.group, self.topic, partition, model)

    def versions_key(self, partition: int, model: str) -> str:
        """Redis list of (partition, model)'s versions, newest first."""
        return f"{self.prefix}:ckpt:{self.group}:{self.topic}:{partition}:{model}"

    def offsets_key(self, partition: int) -> str:
        """Redis hash model -> newest checkpointed offset, for one partition."""
        return f"{self.prefix}:ckpt-offsets:{self.group}:{self.topic}:{partition}"

    def pending_key(self, partition: int, model: str) -> str:
        """Redis hash of (partition, model)'s pending predictions (late labels)."""
        return f"{self.prefix}:ckpt-pending:{self.group}:{self.topic}:{partition}:{model}"

    def pending_digests_key(self, partition: int) -> str:
        """Redis hash model -> digest of its pending hash as last written (the base a delta
        must find; unsigned: a refused write only makes the next one full)."""
        return f"{self.prefix}:ckpt-pending-digest:{self.group}:{self.topic}:{partition}"

    def write_timeout(self, size: int) -> float | None:
        """Socket timeout (s) for writing ``size`` bytes: the client's own plus
        ``size / WRITE_BANDWIDTH``; None when the client has no timeout.

        >>> import redis.asyncio as aioredis
        >>> store = CheckpointStore(aioredis.Redis(socket_timeout=2.0), b"k" * 32, 5, "g", "t")
        >>> store.write_timeout(100_000_000)
        12.0
        """
        base = self.client.connection_pool.connection_kwargs.get("socket_timeout")
        return None if base is None else base + size / WRITE_BANDWIDTH

    async def save(self, partition: int, blobs: dict[str, tuple[int, bytes]]) -> int:
        """Store one partition's (offset, blob) per model atomically; returns 0 (kept for
        callers that counted refused writes: nothing in Redis refuses one any more).

        The write's socket timeout grows with its size (:meth:`write_timeout`)."""
        models = list(blobs)
        keys = [self.offsets_key(partition)] + [self.versions_key(partition, m) for m in models]
        args: list[object] = [self.keep]
        for model in models:
            offset, blob = blobs[model]
            args += [model, offset, blob]
        size = sum(len(blob) for _, blob in blobs.values())
        return int(await self._run(self._save, keys, args, size))

    async def _run(self, script: Any, keys: list[str], args: list[object], size: int) -> Any:
        """Run a write script, its socket timeout raised for ``size`` bytes."""
        timeout = self.write_timeout(size)
        if timeout is None or size < WRITE_BANDWIDTH // 10:
            return await script(keys=keys, args=args)
        async with self.client.client() as single:  # one connection, its timeout raised
            await single.initialize()
            connection = single.connection
            assert connection is not None
            base = connection.socket_timeout
            connection.socket_timeout = timeout
            try:
                return await script(keys=keys, args=args, client=single)
            finally:
                connection.socket_timeout = base

    def rollback_key(self, partition: int, model: str) -> str:
        """Redis key of (partition, model)'s signed rollback marker."""
        return f"{self.prefix}:ckpt-rollback:{self.group}:{self.topic}:{partition}:{model}"

    async def save_pending(self, partition: int, blobs: dict[str, tuple[int, bytes]],
                           pending: dict[str, PendingWrite]) -> list[str]:
        """Store one partition's (offset, blob) per model with its pending-hash write,
        atomically; a model whose write's base is not the stored hash digest is not
        written (its blob neither). Returns the models refused so."""
        keys = [self.offsets_key(partition), self.pending_digests_key(partition)]
        args: list[object] = [self.keep]
        size = 0
        for model, (offset, blob) in blobs.items():
            write = pending[model]
            keys += [self.versions_key(partition, model), self.pending_key(partition, model)]
            args += [model, offset, blob, int(write.full), write.base, write.after,
                     len(write.hset), len(write.hdel)]
            for name, value in write.hset.items():
                args += [name, value]
            args += write.hdel
            size += len(blob) + write.nbytes
        refused = await self._run(self._save_pending, keys, args, size)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in refused]

    async def pending(self, partition: int, model: str) -> dict[bytes, bytes]:
        """Every field of (partition, model)'s pending hash (HSCAN, in pages)."""
        found: dict[bytes, bytes] = {}
        async for name, value in self.client.hscan_iter(self.pending_key(partition, model),
                                                        count=1000):
            found[name] = value
        return found

    async def versions(self, partition: int, model: str) -> list[bytes]:
        """The newest ``keep`` stored versions of (partition, model), newest first."""
        return list(await self.client.lrange(self.versions_key(partition, model), 0,
                                             self.keep - 1))

    async def restore(self, partition: int, models: tuple[str, ...],
                      expected: dict[str, int] | None = None) -> Restored:
        """For each model, the newest version that verifies and reflects at least
        ``expected[model]`` (the offset the group's commit names; none: any); refused ones
        are reported, warnings limited to a few per model.

        Only the newest ``keep`` versions are read, one at a time (``LINDEX``), older ones
        only when the newer fail.
        """
        found = Restored()
        expected = expected or {}
        for model in models:
            key, least, refused = self.versions_key(partition, model), expected.get(model), 0
            for index in range(self.keep):
                blob = await self.client.lindex(key, index)
                if blob is None:
                    break
                try:
                    if least is not None and model in found.older and (
                            checkpoint.verify(blob, self.key)[0].offset < least):
                        continue  # an older one is in hand: do not unpickle another
                    header, learner = checkpoint.load(blob, self.where(partition, model),
                                                      self.key)
                except CheckpointError as exc:
                    refused += 1
                    if refused <= _WARNINGS_PER_MODEL:
                        log.warning("checkpoint refused: model=%s partition=%s version=%s: %s",
                                    model, partition, index, exc,
                                    extra={"model": model, "partition": partition})
                    found.rejected.append((model, index, str(exc)))
                    found.refusals.append((model, index, exc))
                    continue
                if least is not None and header.offset < least:
                    if model not in found.older:
                        found.older[model] = (header.offset, learner, digest(blob))
                        found.created_at.setdefault(model, header.created_at)
                        if header.feedback is not None:  # used if this one is taken
                            found.feedback[model] = header.feedback
                        if refused:
                            found.fallback.add(model)
                    continue
                found.learners[model] = (header.offset, learner)
                found.digests[model] = digest(blob)
                found.created_at[model] = header.created_at
                if header.feedback is not None:
                    found.feedback[model] = header.feedback
                break
            if refused > _WARNINGS_PER_MODEL:
                log.warning("checkpoint refused: model=%s partition=%s: %s more versions "
                            "refused", model, partition, refused - _WARNINGS_PER_MODEL,
                            extra={"model": model, "partition": partition})
        return found

    def _marker(self, partition: int, model: str, offset: int) -> bytes:
        text = f"rollback|{self.group}|{self.topic}|{partition}|{model}|{offset}".encode()
        return b"%d:" % offset + checkpoint.sign(text, self.key).hex().encode()

    async def mark_rollback(self, partition: int, model: str, offset: int) -> None:
        """Allow the next restore of (partition, model) to go back to ``offset``, once."""
        await self.client.set(self.rollback_key(partition, model),
                              self._marker(partition, model, offset))

    async def take_rollback(self, partition: int, model: str, offset: int) -> bool:
        """True (and the marker is gone) when a signed rollback to ``offset`` was asked."""
        marker = await self.client.getdel(self.rollback_key(partition, model))
        return marker is not None and marker == self._marker(partition, model, offset)

    async def headers(self, partition: int, model: str) -> list[Header | CheckpointError]:
        """Each version's verified header (or why it does not verify), newest first."""
        out: list[Header | CheckpointError] = []
        for blob in await self.versions(partition, model):
            try:
                out.append(checkpoint.verify(blob, self.key)[0])
            except CheckpointError as exc:
                out.append(exc)
        return out

    async def stored(self) -> list[tuple[int, str]]:
        """Every (partition, model) with checkpoints in this group and topic."""
        prefix = self.versions_key(0, "").rsplit(":", 2)[0] + ":"
        found = []
        async for raw in self.client.scan_iter(match=f"{prefix}*", count=500):
            partition, model = raw.decode()[len(prefix):].split(":", 1)
            found.append((int(partition), model))
        return sorted(found)

    async def rollback(self, partition: int, model: str, steps: int) -> Header:
        """Drop the newest ``steps`` versions; return the header of the one now newest.

        Raises:
            CheckpointError: fewer than ``steps + 1`` versions, or the new newest does not
                verify.
        """
        blobs = await self.versions(partition, model)
        if len(blobs) <= steps:
            raise CheckpointError(f"model {model} partition {partition} has {len(blobs)} "
                                  f"versions; cannot roll back {steps}")
        header, _ = checkpoint.verify(blobs[steps], self.key)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.ltrim(self.versions_key(partition, model), steps, -1)
            pipe.hset(self.offsets_key(partition), model, header.offset)
            pipe.set(self.rollback_key(partition, model),
                     self._marker(partition, model, header.offset))
            await pipe.execute()
        return header

    async def push(self, partition: int, model: str, offset: int, blob: bytes) -> None:
        """Make ``blob`` the newest version whatever is stored (import, rollback in place);
        the next restore may take it even when the group's commit names a newer one."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(self.versions_key(partition, model), blob)
            pipe.ltrim(self.versions_key(partition, model), 0, self.keep - 1)
            pipe.hset(self.offsets_key(partition), model, offset)
            pipe.set(self.rollback_key(partition, model),
                     self._marker(partition, model, offset))
            await pipe.execute()
