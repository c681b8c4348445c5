"""When to checkpoint, and writing checkpoints without ever stalling the scoring loop.

A snapshot (pickle + signature) is taken synchronously after a batch's outputs
were delivered, so it reflects exactly the events whose predictions are out.
A background task writes it to Redis, retrying with backoff while Redis is
down; newer snapshots of a partition replace older ones still waiting. Only a
written checkpoint lets the partition's committed offset move forward.
"""

import asyncio
import logging
import time
from dataclasses import dataclass

import redis.exceptions

from learners import checkpoint
from learners.partition import PartitionLearners
from schemas.settings import Settings
from streams.checkpoint_store import CheckpointStore, Restored
from streams.exceptions import ServiceError
from streams.metrics import Metrics

log = logging.getLogger(__name__)
_RETRYABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One partition's learners, serialised at ``offset``."""

    partition: int
    offset: int
    blobs: dict[str, tuple[int, bytes]]
    generation: int


class Checkpointer:
    """Schedules, writes and restores checkpoints for the partitions of one worker."""

    def __init__(self, store: CheckpointStore, settings: Settings, metrics: Metrics) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.durable: dict[int, int] = {}
        self.durable_at: dict[int, float] = {}
        self._snapped_learned: dict[int, int] = {}
        self._snapped_offset: dict[int, int] = {}
        self._snapped_at: dict[int, float] = {}
        self._pending: dict[int, Snapshot] = {}
        self._generation: dict[int, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- scheduling ---------------------------------------------------------------------
    def track(self, partition: int, part: PartitionLearners) -> None:
        """Start counting from a freshly assigned (or restored) partition's state."""
        self._generation[partition] = self._generation.get(partition, 0) + 1
        self._snapped_learned[partition] = part.learned()
        self._snapped_offset[partition] = part.offset
        self._snapped_at[partition] = time.monotonic()
        if part.offset >= 0:
            self.durable[partition] = part.offset
            self.durable_at.setdefault(partition, time.time())

    def forget(self, partition: int) -> None:
        """Drop everything about a partition this worker no longer owns; a write in flight
        for it is then ignored when it completes."""
        self._generation[partition] = self._generation.get(partition, 0) + 1
        for table in (self._snapped_learned, self._snapped_offset, self._snapped_at,
                      self._pending, self.durable, self.durable_at):
            table.pop(partition, None)

    def due(self, partition: int, part: PartitionLearners) -> bool:
        """Every N learned events, or every T seconds once the partition moved on."""
        if part.offset <= self._snapped_offset.get(partition, -1):
            return False
        if part.learned() - self._snapped_learned.get(partition, 0) >= \
                self.settings.checkpoint_every:
            return True
        elapsed = time.monotonic() - self._snapped_at.get(partition, 0.0)
        return elapsed >= self.settings.checkpoint_interval

    def snapshot(self, partition: int, part: PartitionLearners) -> Snapshot:
        """Serialise and sign every learner of ``partition`` at its current offset."""
        assert self.settings.checkpoint_key is not None
        key = self.settings.checkpoint_key.get_secret_value().encode()
        now = time.time()
        blobs = {}
        for name, learner in part.learners.items():
            # A model restored from a newer version than its partition's floor reflects
            # events up to that version's offset, not just the floor.
            offset = max(part.offset, part.floors.get(name, -1))
            blobs[name] = (offset, checkpoint.dump(learner, self.store.where(partition, name),
                                                   offset, key, now))
        self._snapped_learned[partition] = part.learned()
        self._snapped_offset[partition] = part.offset
        self._snapped_at[partition] = time.monotonic()
        return Snapshot(partition, part.offset, blobs, self._generation.get(partition, 0))

    # -- writing --------------------------------------------------------------------------
    def submit(self, snap: Snapshot) -> None:
        """Queue ``snap`` for the background writer (replacing an older one)."""
        self._pending[snap.partition] = snap
        self._wake.set()

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.create_task(self._run(), name="driftline-checkpoints")

    async def stop(self) -> None:
        """Stop the background writer (pending snapshots are dropped: state is replayable)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                partition = next(iter(self._pending))
                snap = self._pending.pop(partition)
                if await self._write(snap):
                    backoff = 0.1
                    continue
                if snap.generation == self._generation.get(partition):
                    self._pending.setdefault(partition, snap)
                await asyncio.sleep(backoff)  # backoff while Redis is unreachable
                backoff = min(backoff * 2, 5.0)

    async def _write(self, snap: Snapshot) -> bool:
        """Store ``snap``; False (counted, logged) if Redis did not take it."""
        started = time.perf_counter()
        extra = {"partition": snap.partition, "offset": snap.offset}
        try:
            conflicts = await self.store.save(snap.partition, snap.blobs) if snap.blobs else 0
        except _RETRYABLE as exc:
            self.metrics.checkpoint_failures.inc()
            log.warning("checkpoint write failed, will retry: %r", exc, extra=extra)
            return False
        except Exception as exc:  # READONLY, OOM, MISCONF...: Redis answered, but no
            self.metrics.checkpoint_failures.inc()
            log.error("checkpoint write refused by Redis, will retry: %r", exc, extra=extra)
            return False
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        self.metrics.checkpoints.inc()
        self.metrics.checkpoint_bytes.inc(sum(len(b) for _, b in snap.blobs.values()))
        if snap.generation != self._generation.get(snap.partition):
            return True  # the partition was revoked meanwhile: nothing to track
        if conflicts:
            log.warning("a newer checkpoint is stored: another worker owns this partition",
                        extra=extra)
            return True
        if snap.offset > self.durable.get(snap.partition, -1):
            self.durable[snap.partition] = snap.offset
            self.durable_at[snap.partition] = time.time()
        return True

    async def flush(self, partition: int, part: PartitionLearners, timeout: float) -> bool:
        """Checkpoint ``partition`` now (revocation, shutdown); False if Redis would not take it."""
        self._pending.pop(partition, None)
        if part.offset <= self.durable.get(partition, -1):
            return True
        snap = self.snapshot(partition, part)
        deadline = time.monotonic() + timeout
        backoff = 0.1
        while not await self._write(snap):
            if time.monotonic() + backoff > deadline:
                log.error("checkpoint not written: Redis unreachable; the next owner "
                          "replays from the previous one",
                          extra={"partition": partition, "offset": snap.offset})
                return False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
        return True

    # -- restoring ------------------------------------------------------------------------
    async def restore(self, partition: int, models: tuple[str, ...]) -> Restored:
        """The newest valid checkpoints of ``partition``; waits (bounded) while Redis is down.

        Raises:
            ServiceError: Redis stayed unreachable for ``checkpoint_restore_timeout`` seconds;
                the worker stops rather than start from a blank model.
        """
        deadline = time.monotonic() + self.settings.checkpoint_restore_timeout
        backoff = 0.1
        while True:
            try:
                found = await self.store.restore(partition, models)
                break
            except _RETRYABLE as exc:
                if time.monotonic() + backoff > deadline:
                    raise ServiceError(
                        f"Redis unreachable for {self.settings.checkpoint_restore_timeout:.0f}s "
                        f"while restoring partition {partition}: {exc}") from None
                log.warning("Redis unreachable while restoring, waiting: %r", exc,
                            extra={"partition": partition})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        for _model, _index, reason in found.rejected:
            label = "signature" if "signature" in reason else "invalid"
            self.metrics.checkpoint_rejected.labels(reason=label).inc()
        lost = sorted({model for model, _, _ in found.rejected} - found.learners.keys())
        if lost and self.settings.checkpoint_unverifiable == "stop":
            raise ServiceError(
                f"partition {partition}: no checkpoint of model(s) {', '.join(lost)} verifies "
                "(wrong DRIFTLINE_CHECKPOINT_KEY?); not starting them blank. Fix the key, roll "
                "back with `driftline checkpoints rollback`, or set "
                "DRIFTLINE_CHECKPOINT_UNVERIFIABLE=fresh")
        return found
