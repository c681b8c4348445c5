"""Writing checkpoints without ever stalling the scoring loop, and restoring them.

Snapshots are taken by :class:`learners.partition_state.PartitionState` (which
decides when one may be taken). A background task writes them to Redis, retrying
with backoff while Redis is down; a newer snapshot of a partition replaces an
older one still waiting. A completed write is reported to
:class:`learners.partition_state.Partitions`, which ignores it when the partition
has moved away (or was re-assigned) meanwhile. This module holds no offsets.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace

import redis.exceptions

from learners import checkpoint
from learners.exceptions import CheckpointError
from learners.feedback import PartitionFeedback
from learners.feedback_codec import FeedbackCodec, PendingSummary
from learners.learner import Learner
from learners.partition_state import Partitions, PartitionState, Snapshot
from schemas.settings import Settings
from streams.checkpoint_store import CheckpointStore, PendingWrite, Restored
from streams.exceptions import ServiceError
from streams.metrics import Metrics

log = logging.getLogger(__name__)
_RETRYABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class Checkpointer:
    """Serialises, writes and restores the checkpoints of one worker's partitions.

    ``clock`` gives wall-clock seconds (checkpoint headers, ``durable_at``); the
    store is any object with :class:`CheckpointStore`'s ``where``/``save``/``restore``.
    """

    def __init__(self, store: CheckpointStore, settings: Settings, metrics: Metrics,
                 partitions: Partitions | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.partitions = partitions
        self.clock = clock
        self._pending: dict[int, Snapshot] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Late labels: the summary of each (partition, model)'s pending hash as the
        #: last snapshot left it (absent: the next write of that hash is a full one).
        self._summaries: dict[tuple[int, str], PendingSummary] = {}

    def bind(self, partitions: Partitions) -> None:
        """Report completed writes to ``partitions`` (the states of the worker's partitions)."""
        self.partitions = partitions

    def dump(self, partition: int) -> Callable[[str, Learner, int], bytes]:
        """The serialiser of ``partition``'s learners: pickle, header, HMAC signature."""
        assert self.settings.checkpoint_key is not None
        key = self.settings.checkpoint_key.get_secret_value().encode()
        now = self.clock()
        return lambda name, learner, offset: checkpoint.dump(
            learner, self.store.where(partition, name), offset, key, now)

    def snapshot(self, state: PartitionState, now: float) -> Snapshot:
        """Snapshot ``state``'s learners (``now``: monotonic seconds, for scheduling), each
        with its pending-predictions write (the changes since the previous snapshot, or
        the whole store when there is no previous one) and their summary in its header."""
        assert self.settings.checkpoint_key is not None
        key = self.settings.checkpoint_key.get_secret_value().encode()
        wall = self.clock()
        pending: dict[str, PendingWrite] = {}

        def dump_with_pending(name: str, learner: Learner, offset: int) -> bytes:
            pending[name], header = self._seal_pending(state, name)
            return checkpoint.dump(learner, self.store.where(state.partition, name), offset,
                                   key, wall, feedback=header)

        snap = state.snapshot(dump_with_pending, now)
        return replace(snap, pending=pending)

    def _seal_pending(self, state: PartitionState,
                      name: str) -> tuple[PendingWrite, dict[str, object]]:
        store = state.feedback.store(name)
        codec = self._codec(state.partition, name)
        where = (state.partition, name)
        before = self._summaries.get(where)
        watermark = state.feedback.watermark
        delta = store.changes_since_last_checkpoint()
        if before is None:
            sealed = codec.seal_all(store.fields(), watermark, store.totals)
        else:
            sealed = codec.seal_delta(delta, before, watermark, store.totals)
        self._summaries[where] = sealed.summary
        offset = state.feedback_offset(name)
        return (PendingWrite(offset, sealed.hset, sealed.hdel, before is None),
                {"summary": asdict(sealed.summary), "offset": offset})

    def _codec(self, partition: int, model: str) -> FeedbackCodec:
        assert self.settings.checkpoint_key is not None
        return FeedbackCodec(self.settings.checkpoint_key.get_secret_value().encode(),
                             self.store.where(partition, model))

    # -- writing --------------------------------------------------------------------------
    def submit(self, snap: Snapshot) -> None:
        """Queue ``snap`` for the background writer (replacing an older one)."""
        older = self._pending.get(snap.partition)
        self._pending[snap.partition] = snap if older is None else combine(older, snap)
        self._wake.set()

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.create_task(self._run(), name="driftline-checkpoints")

    async def stop(self) -> None:
        """Stop the background writer (pending snapshots are dropped: state is replayable)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _current(self, snap: Snapshot) -> bool:
        state = None if self.partitions is None else self.partitions.get(snap.partition)
        return state is not None and state.generation == snap.generation and state.active

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
                if self._current(snap):
                    newer = self._pending.get(partition)
                    self._pending[partition] = snap if newer is None else combine(snap, newer)
                await asyncio.sleep(backoff)  # backoff while Redis is unreachable
                backoff = min(backoff * 2, 5.0)

    async def _write(self, snap: Snapshot) -> bool:
        """Store ``snap``; False (counted, logged) if Redis did not take it."""
        started = time.perf_counter()
        extra = {"partition": snap.partition, "offset": snap.offset}
        try:
            conflicts = (await self.store.save(snap.partition, snap.blobs, snap.pending)
                         if snap.blobs else 0)
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
        if conflicts:
            log.warning("a newer checkpoint is stored: another worker owns this partition",
                        extra=extra)
            return True
        if self.partitions is not None:
            self.partitions.written(snap, self.clock())  # ignored if the partition moved on
        return True

    async def flush(self, state: PartitionState, timeout: float) -> bool:
        """Checkpoint ``state`` now (revocation, shutdown); False if Redis would not take it
        (or its learners are not in step with delivery, so must not be checkpointed)."""
        older = self._pending.pop(state.partition, None)
        if not state.in_step:
            return False
        if state.processed <= state.durable and state.fb.processed <= state.fb.durable:
            if older is not None:
                self._pending[state.partition] = older
            return True
        snap = self.snapshot(state, time.monotonic())
        if older is not None:
            snap = combine(older, snap)
        deadline = time.monotonic() + timeout
        backoff = 0.1
        while not await self._write(snap):
            if time.monotonic() + backoff > deadline:
                log.error("checkpoint not written: Redis unreachable; the next owner "
                          "replays from the previous one",
                          extra={"partition": state.partition, "offset": snap.offset})
                return False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
        if self.partitions is None:  # not bound to a worker's partitions (tools)
            state.written(snap, self.clock())
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

    async def restore_pending(self, partition: int, found: Restored,
                              feedback: PartitionFeedback) -> dict[str, int]:
        """Load the pending hash of each restored model into ``feedback`` (verified against
        its checkpoint's summary; the checks run in a thread, the hash is read in pages,
        so a large store does not stall the loop). Returns each model's feedback offset.

        A hash that does not match its checkpoint is handled like an unverifiable
        checkpoint (``DRIFTLINE_CHECKPOINT_UNVERIFIABLE``): the worker stops, or the
        model starts afresh (its learner is dropped from ``found``).

        Raises:
            ServiceError: a hash does not verify and the policy is ``stop``.
        """
        for where in [w for w in self._summaries if w[0] == partition]:
            del self._summaries[where]
        offsets: dict[str, int] = {}
        for model in list(found.learners):
            info = found.feedback.get(model)
            if info is None:
                continue
            summary = PendingSummary(**info["summary"])
            store = feedback.new_store(model)
            try:
                stored = await self.store.pending(partition, model)
                await asyncio.to_thread(self._codec(partition, model).restore, stored,
                                        summary, store)
            except CheckpointError as exc:
                self.metrics.checkpoint_rejected.labels(reason="invalid").inc()
                if self.settings.checkpoint_unverifiable == "stop":
                    raise ServiceError(f"partition {partition}, model {model}: pending "
                                       f"predictions do not match the checkpoint: {exc}; set "
                                       "DRIFTLINE_CHECKPOINT_UNVERIFIABLE=fresh to start the "
                                       "model afresh") from None
                log.error("pending predictions refused, model starts afresh: %s", exc,
                          extra={"model": model, "partition": partition})
                del found.learners[model]
                continue
            feedback.stores[model] = store
            feedback.watermark = max(feedback.watermark, summary.watermark)
            self._summaries[partition, model] = summary
            offsets[model] = int(info["offset"])
        return offsets


def combine(older: Snapshot, newer: Snapshot) -> Snapshot:
    """``newer`` with the pending writes of ``older`` (not written) folded in before its
    own, so replacing a waiting snapshot loses no change of a pending hash."""
    if older.generation != newer.generation:
        return newer
    pending = dict(newer.pending)
    for model, old in older.pending.items():
        new = pending.get(model)
        if new is None:  # the model is not in the newer snapshot: cannot happen, keep it
            continue
        dropped = set(new.hdel)
        hset = {k: v for k, v in old.hset.items() if k not in dropped}
        hset.update(new.hset)
        hdel = [k for k in old.hdel if k not in new.hset] + new.hdel
        pending[model] = PendingWrite(new.feedback_offset, hset, hdel, old.full or new.full)
    return replace(newer, pending=pending)
