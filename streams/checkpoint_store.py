"""Signed checkpoints in Redis: the last K versions per (group, topic, partition, model).

Keys start with ``prefix`` (``DRIFTLINE_REDIS_PREFIX``, default ``driftline``).
Layout: a list per model, newest first (``LPUSH`` + ``LTRIM``), and a hash per
partition holding each model's last written offset. A Lua script writes a
partition's models atomically.

Nothing unsigned here decides what is written or restored. The offsets hash is
informational (``checkpoints list``, operators); writes are not refused by it (someone
setting it to 1e15 used to stop every write). Which version is valid is decided at
restore, from signed headers only: newest first, the first that verifies and is not
older than the checkpoint the group's Kafka commit names (see
:mod:`streams.commit_metadata`); a stale write of a worker that lost the partition is
older than that and is passed over. A rollback (``checkpoints rollback``/``push``)
leaves a signed marker the worker honours once.
"""

import logging
from dataclasses import dataclass, field

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


@dataclass
class Restored:
    """What a restore found for one partition."""

    learners: dict[str, tuple[int, Learner]] = field(default_factory=dict)
    rejected: list[tuple[str, int, str]] = field(default_factory=list)
    #: Each refusal itself (``.reason``: signature / unsupported / version / invalid).
    refusals: list[tuple[str, int, CheckpointError]] = field(default_factory=list)
    #: Digest (:func:`streams.commit_metadata.digest`) of each restored model's blob.
    digests: dict[str, str] = field(default_factory=dict)
    #: Models whose only verifying versions are older than the commit named:
    #: model -> (offset, learner, digest) of the newest of them.
    older: dict[str, tuple[int, Learner, str]] = field(default_factory=dict)
    #: Models in ``older`` whose newer versions were there but refused (corrupt).
    fallback: set[str] = field(default_factory=set)


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

    def where(self, partition: int, model: str) -> Where:
        """The identity a checkpoint of (partition, model) is signed with."""
        return Where(self.group, self.topic, partition, model)

    def versions_key(self, partition: int, model: str) -> str:
        """Redis list of (partition, model)'s versions, newest first."""
        return f"{self.prefix}:ckpt:{self.group}:{self.topic}:{partition}:{model}"

    def offsets_key(self, partition: int) -> str:
        """Redis hash model -> newest checkpointed offset, for one partition."""
        return f"{self.prefix}:ckpt-offsets:{self.group}:{self.topic}:{partition}"

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
        timeout = self.write_timeout(size)
        if timeout is None or size < WRITE_BANDWIDTH // 10:
            return int(await self._save(keys=keys, args=args))
        async with self.client.client() as single:  # one connection, its timeout raised
            await single.initialize()
            connection = single.connection
            assert connection is not None
            base = connection.socket_timeout
            connection.socket_timeout = timeout
            try:
                return int(await self._save(keys=keys, args=args, client=single))
            finally:
                connection.socket_timeout = base

    def rollback_key(self, partition: int, model: str) -> str:
        """Redis key of (partition, model)'s signed rollback marker."""
        return f"{self.prefix}:ckpt-rollback:{self.group}:{self.topic}:{partition}:{model}"

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
                            checkpoint.read_header(blob, self.key)[0].offset < least):
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
                        if refused:
                            found.fallback.add(model)
                    continue
                found.learners[model] = (header.offset, learner)
                found.digests[model] = digest(blob)
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
                out.append(checkpoint.read_header(blob, self.key)[0])
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
        header, _ = checkpoint.read_header(blobs[steps], self.key)
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
