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


@dataclass
class Restored:
    """What a restore found for one partition."""

    learners: dict[str, tuple[int, Learner]] = field(default_factory=dict)
    rejected: list[tuple[str, int, str]] = field(default_factory=list)


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

    async def save(self, partition: int, blobs: dict[str, tuple[int, bytes]]) -> int:
        """Store one partition's (offset, blob) per model atomically, each only if newer
        than the stored one; return how many models already had a newer checkpoint."""
        models = list(blobs)
        keys = [self.offsets_key(partition)] + [self.versions_key(partition, m) for m in models]
        args: list[object] = [self.keep]
        for model in models:
            offset, blob = blobs[model]
            args += [model, offset, blob]
        return int(await self._save(keys=keys, args=args))

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
