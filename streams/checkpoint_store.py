"""Signed checkpoints in Redis: the last K versions per (group, topic, partition, model).

Keys start with ``prefix`` (``DRIFTLINE_REDIS_PREFIX``, default ``driftline``).
Layout: a list per model, newest first (``LPUSH`` + ``LTRIM``), and a hash per
partition holding each model's newest offset. A Lua script writes a
partition's models atomically and only where newer than what is stored, so a
worker that lost its partitions cannot overwrite the new owner's.
"""

import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from learners import checkpoint
from learners.checkpoint import Header, Where
from learners.exceptions import CheckpointError
from learners.learner import Learner
from schemas.constants import REDIS_PREFIX

log = logging.getLogger(__name__)

# KEYS: offsets hash, then one versions list per model.
# ARGV: keep, then (model, offset, blob) per model.
# Returns how many models already had a strictly newer checkpoint (refused).
_SAVE = """
local keep = tonumber(ARGV[1])
local refused = 0
for i = 2, #KEYS do
  local model = ARGV[3 * i - 4]
  local offset = tonumber(ARGV[3 * i - 3])
  local current = redis.call('HGET', KEYS[1], model)
  if (not current) or tonumber(current) < offset then
    redis.call('LPUSH', KEYS[i], ARGV[3 * i - 2])
    redis.call('LTRIM', KEYS[i], 0, keep - 1)
    redis.call('HSET', KEYS[1], model, offset)
  elseif tonumber(current) > offset then
    refused = refused + 1
  end
end
return refused
"""

# Late labels (issue 13): the same newer-only write, where "newer" is the pair
# (events offset, feedback offset), and each accepted model's pending-predictions hash
# written with its blob (DEL first on a full write, then HDEL, then HSET).
# KEYS: offsets hash, feedback offsets hash, then (versions list, pending hash) per model.
# ARGV: keep, then per model: model, offset, feedback offset, blob, full (0/1), #set, #del,
# #set (field, value) pairs, #del fields.
_SAVE_PENDING = """
local keep = tonumber(ARGV[1])
local refused = 0
local a = 2
for i = 3, #KEYS, 2 do
  local model = ARGV[a]
  local offset = tonumber(ARGV[a + 1])
  local fb = tonumber(ARGV[a + 2])
  local blob = ARGV[a + 3]
  local full = ARGV[a + 4] == '1'
  local nset = tonumber(ARGV[a + 5])
  local ndel = tonumber(ARGV[a + 6])
  local first = a + 7
  a = first + 2 * nset + ndel
  local current = tonumber(redis.call('HGET', KEYS[1], model) or '-2')
  local current_fb = tonumber(redis.call('HGET', KEYS[2], model) or '-2')
  if current < offset or (current == offset and current_fb < fb) then
    redis.call('LPUSH', KEYS[i], blob)
    redis.call('LTRIM', KEYS[i], 0, keep - 1)
    redis.call('HSET', KEYS[1], model, offset)
    redis.call('HSET', KEYS[2], model, fb)
    if full then
      redis.call('DEL', KEYS[i + 1])
    end
    for j = 0, ndel - 1 do
      redis.call('HDEL', KEYS[i + 1], ARGV[first + 2 * nset + j])
    end
    for j = 0, nset - 1 do
      redis.call('HSET', KEYS[i + 1], ARGV[first + 2 * j], ARGV[first + 2 * j + 1])
    end
  elseif current > offset or (current == offset and current_fb > fb) then
    refused = refused + 1
  end
end
return refused
"""


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """One model's pending-hash write (``learners/feedback_codec.py``): the feedback
    offset its blob reflects, fields to set and delete, and whether to replace the hash."""

    feedback_offset: int
    hset: dict[bytes, bytes]
    hdel: list[bytes]
    full: bool


@dataclass
class Restored:
    """What a restore found for one partition."""

    learners: dict[str, tuple[int, Learner]] = field(default_factory=dict)
    rejected: list[tuple[str, int, str]] = field(default_factory=list)
    #: Late labels: the ``feedback`` header object of each restored model that has one.
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

    def feedback_offsets_key(self, partition: int) -> str:
        """Redis hash model -> feedback offset of its newest checkpoint, for one partition."""
        return f"{self.prefix}:ckpt-fboffsets:{self.group}:{self.topic}:{partition}"

    async def save(self, partition: int, blobs: dict[str, tuple[int, bytes]],
                   pending: dict[str, PendingWrite] | None = None) -> int:
        """Store one partition's (offset, blob) per model atomically, each only if newer
        than the stored one; return how many models already had a newer checkpoint.

        With ``pending`` (late labels), "newer" is (offset, feedback offset) and each
        accepted model's pending hash is written in the same script."""
        if pending is not None:
            return await self._save_with_pending(partition, blobs, pending)
        models = list(blobs)
        keys = [self.offsets_key(partition)] + [self.versions_key(partition, m) for m in models]
        args: list[object] = [self.keep]
        for model in models:
            offset, blob = blobs[model]
            args += [model, offset, blob]
        return int(await self._save(keys=keys, args=args))

    async def _save_with_pending(self, partition: int, blobs: dict[str, tuple[int, bytes]],
                                 pending: dict[str, PendingWrite]) -> int:
        keys = [self.offsets_key(partition), self.feedback_offsets_key(partition)]
        args: list[object] = [self.keep]
        for model, (offset, blob) in blobs.items():
            write = pending.get(model) or PendingWrite(-1, {}, [], False)
            keys += [self.versions_key(partition, model), self.pending_key(partition, model)]
            args += [model, offset, write.feedback_offset, blob, int(write.full),
                     len(write.hset), len(write.hdel)]
            for name, value in write.hset.items():
                args += [name, value]
            args += write.hdel
        return int(await self._save_pending(keys=keys, args=args))

    async def pending(self, partition: int, model: str) -> dict[bytes, bytes]:
        """Every field of (partition, model)'s pending hash (HSCAN, in pages)."""
        found: dict[bytes, bytes] = {}
        async for name, value in self.client.hscan_iter(self.pending_key(partition, model),
                                                        count=1000):
            found[name] = value
        return found

    async def versions(self, partition: int, model: str) -> list[bytes]:
        """All stored versions of (partition, model), newest first."""
        return list(await self.client.lrange(self.versions_key(partition, model), 0, -1))

    async def restore(self, partition: int, models: tuple[str, ...]) -> Restored:
        """For each model, the newest version that verifies; refused ones are reported."""
        found = Restored()
        for model in models:
            for index, blob in enumerate(await self.versions(partition, model)):
                try:
                    header, learner = checkpoint.load(blob, self.where(partition, model),
                                                      self.key)
                except CheckpointError as exc:
                    log.warning("checkpoint refused: model=%s partition=%s version=%s: %s",
                                model, partition, index, exc,
                                extra={"model": model, "partition": partition})
                    found.rejected.append((model, index, str(exc)))
                    continue
                found.learners[model] = (header.offset, learner)
                if header.feedback is not None:
                    found.feedback[model] = header.feedback
                break
        return found

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
            await pipe.execute()
        return header

    async def push(self, partition: int, model: str, offset: int, blob: bytes) -> None:
        """Make ``blob`` the newest version whatever is stored (import, rollback in place)."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(self.versions_key(partition, model), blob)
            pipe.ltrim(self.versions_key(partition, model), 0, self.keep - 1)
            pipe.hset(self.offsets_key(partition), model, offset)
            await pipe.execute()
