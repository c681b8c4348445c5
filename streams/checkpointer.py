"""Writing checkpoints without ever stalling the scoring loop, and restoring them.

Snapshots are taken by :class:`learners.partition_state.PartitionState` (which
decides when one may be taken). A background task writes them to Redis, retrying
with backoff while Redis is down; a newer snapshot of a partition replaces an
older one still waiting. A completed write is reported to
:class:`learners.partition_state.Partitions`, which ignores it when the partition
has moved away (or was re-assigned) meanwhile. This module holds no offsets.

Snapshots are serialised in a forked child (:mod:`streams.snapshot`): the partition's
bookkeeping (:meth:`PartitionState.snapshot`) happens in the parent at the instant of
the fork, with a serialiser that writes nothing, so the offsets a snapshot covers are
exactly the delivered ones at that instant; the child pickles the learners as they were
then. A failed child is counted and logged, and the next due snapshot tries again.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import redis.exceptions

from learners import checkpoint
from learners.exceptions import CheckpointError
from learners.feedback import PartitionFeedback
from learners.learner import Learner
from learners.partition_state import Partitions, PartitionState, Snapshot
from schemas.settings import Settings
from streams import commit_metadata
from streams.checkpoint_store import CheckpointStore, PendingWrite, Restored
from streams.commit_metadata import Identity
from streams.exceptions import ServiceError
from streams.metrics import Metrics
from streams.pending_checkpoints import PendingHashes, combine
from streams.snapshot import CAN_FORK, Forked, SnapshotFailed, pack, reaped, unpack

log = logging.getLogger(__name__)
#: ``checkpoint_snapshot = "auto"`` forks once a partition's checkpoint is this large
#: (stored, compressed: ~1 MB of pickle, ~20-30 ms of pickling on the loop).
FORK_MIN_BYTES = 256 * 1024
T = TypeVar("T")
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
        self._pending: dict[int, SnapshotJob] = {}
        #: partition -> resolved once the background writer is done with the job it took
        #: (a flush waits for it: two writers of one pending hash would refuse each other)
        self._inflight: dict[int, asyncio.Future[None]] = {}
        #: partition -> bytes of its last snapshot (``auto``: fork once it is large).
        self._sizes: dict[int, int] = {}
        #: partition -> (generation, offset, checkpoint of each model, feedback offset)
        #: last made durable.
        self._identities: dict[int, tuple[int, int, dict[str, Identity], int]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Late labels: the pending-predictions hash chain of each (partition, model).
        self.hashes = PendingHashes(settings, store.where)

    def bind(self, partitions: Partitions) -> None:
        """Report completed writes to ``partitions`` (the states of the worker's partitions)."""
        self.partitions = partitions

    def dump(self, partition: int) -> Callable[..., bytes]:
        """The serialiser of ``partition``'s learners: pickle, header (with the optional
        late-label ``feedback`` object), HMAC signature."""
        assert self.settings.checkpoint_key is not None
        key = self.settings.checkpoint_key.get_secret_value().encode()
        now = self.clock()
        return lambda name, learner, offset, feedback=None: checkpoint.dump(
            learner, self.store.where(partition, name), offset, key, now, feedback=feedback)

    def snapshot(self, state: PartitionState, now: float) -> "SnapshotJob":
        """Snapshot ``state``'s learners (``now``: monotonic seconds, for scheduling), each
        with its pending-predictions write (:class:`streams.pending_checkpoints.PendingHashes`,
        sealed here, in this process) and the hash's summary in its header; the learners are
        serialised in a forked child (``checkpoint_snapshot = "fork"``, on Linux), else
        inline."""
        pending: dict[str, PendingWrite] = {}
        headers: dict[str, dict[str, Any]] = {}
        dump = self.dump(state.partition)
        feedback = state.feedback

        def seal_pending(name: str) -> dict[str, Any]:
            pending[name], headers[name] = self.hashes.seal(
                state.partition, name, feedback.store(name), feedback.watermark,
                state.feedback_offset(name))
            return headers[name]

        def dump_with_pending(name: str, learner: Learner, offset: int) -> bytes:
            return dump(name, learner, offset, seal_pending(name))  # type: ignore[no-any-return]

        def seal_only(name: str, learner: Learner, offset: int) -> bytes:
            seal_pending(name)
            return b""  # the child serialises the learner

        if not self._fork(state.partition):
            return SnapshotJob(replace(state.snapshot(dump_with_pending, now), pending=pending))
        taken = replace(state.snapshot(seal_only, now), pending=pending)
        learners = {name: state.learners[name] for name in taken.blobs}
        return SnapshotJob(taken, Forked(lambda: pack({
            name: dump(name, learners[name], offset, headers[name])
            for name, (offset, _) in taken.blobs.items()})))

    def _fork(self, partition: int) -> bool:
        """Whether to serialise ``partition``'s next snapshot in a forked child: always
        (``fork``), never (``inline``), or (``auto``) once its last checkpoint was at least
        :data:`FORK_MIN_BYTES` stored — below that, pickling on the loop takes a few ms, less
        than the fork and the copy-on-write faults it brings (measured: the default model's
        worker ran at ~0.6x the events/s with a fork per checkpoint)."""
        mode = self.settings.checkpoint_snapshot
        if mode == "inline" or not CAN_FORK:
            return False
        return mode == "fork" or self._sizes.get(partition, 0) >= FORK_MIN_BYTES

    async def _taken(self, job: "SnapshotJob") -> Snapshot | None:
        """``job``'s snapshot; None (counted, logged) if its child failed. The pending-hash
        writes sealed for it are then lost, so the next write of each of its hashes is a
        full one."""
        try:
            limit = self.settings.checkpoint_snapshot_timeout
            try:
                snap = await asyncio.wait_for(job.result(), limit)
                self._sizes[snap.partition] = sum(len(b) for _, b in snap.blobs.values())
                return snap
            except TimeoutError:
                job.cancel()
                raise SnapshotFailed(f"snapshot child took longer than {limit:g} s "
                                     "(checkpoint_snapshot_timeout); killed") from None
        except SnapshotFailed as exc:
            self.metrics.checkpoint_failures.inc()
            self.hashes.forget(job.taken.partition)
            log.error("checkpoint snapshot failed: %s", exc,
                      extra={"partition": job.taken.partition, "offset": job.taken.offset})
            return None

    # -- identities (what a commit names) ---------------------------------------------------
    def remember(self, partition: int, generation: int, offset: int,
                 ids: dict[str, Identity], feedback_offset: int = -1) -> None:
        """``ids`` are the checkpoints that make ``partition`` durable up to ``offset``
        (and its feedback topic-partition up to ``feedback_offset``)."""
        self._identities[partition] = (generation, offset, dict(ids), feedback_offset)

    def identity(self, partition: int, generation: int, upto: int,
                 feedback: bool = False) -> dict[str, Identity]:
        """The checkpoints a commit of ``partition`` up to ``upto`` names (those of the
        newest durable snapshot of this generation, if it covers ``upto``; of the
        feedback topic-partition with ``feedback``)."""
        known = self._identities.get(partition)
        if known is None or known[0] != generation or known[3 if feedback else 1] < upto:
            return {}
        return known[2]

    def _remember_snapshot(self, snap: Snapshot) -> None:
        self.remember(snap.partition, snap.generation, snap.offset,
                      {m: Identity(o, commit_metadata.digest(b))
                       for m, (o, b) in snap.blobs.items()}, snap.feedback_offset)

    # -- writing --------------------------------------------------------------------------
    def submit(self, job: "SnapshotJob") -> None:
        """Queue ``job`` for the background writer (replacing, and cancelling, an older one
        whose pending-hash writes are folded into it)."""
        partition = job.taken.partition
        older = self._pending.get(partition)
        if older is not None:
            older.cancel()
            job = job.after(older.taken)
        self._pending[partition] = job
        self._wake.set()

    def discard(self, job: "SnapshotJob") -> None:
        """``job`` will never be written (its partition moved away or failed): stop its
        child; its pending-hash writes are lost, so the next write of each hash is full."""
        job.cancel()
        self.hashes.forget(job.taken.partition)

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.create_task(self._run(), name="driftline-checkpoints")

    async def stop(self) -> None:
        """Stop the background writer (pending snapshots are dropped: state is replayable)."""
        for pending in self._pending.values():
            pending.cancel()
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await reaped()

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
                job = self._pending.pop(partition)
                done = self._inflight[partition] = asyncio.get_running_loop().create_future()
                try:
                    snap = await self._taken(job)
                    if snap is None:
                        continue
                    written = await self._write(snap)
                    if not written and self._current(snap):
                        newer = self._pending.get(partition)
                        self._pending[partition] = (SnapshotJob(snap) if newer is None
                                                    else newer.after(snap))
                finally:
                    if self._inflight.get(partition) is done:
                        del self._inflight[partition]
                    done.set_result(None)
                if written:
                    backoff = 0.1
                    continue
                await asyncio.sleep(backoff)  # backoff while Redis is unreachable
                backoff = min(backoff * 2, 5.0)

    async def _write(self, snap: Snapshot) -> bool:
        """Store ``snap``; False (counted, logged) if Redis did not take it."""
        started = time.perf_counter()
        extra = {"partition": snap.partition, "offset": snap.offset}
        try:
            if snap.pending:
                refused = await self.store.save_pending(snap.partition, snap.blobs,
                                                        snap.pending)
            else:
                refused = []
                if snap.blobs:
                    await self.store.save(snap.partition, snap.blobs)
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
        for model, (_, blob) in snap.blobs.items():
            self.metrics.checkpoint_size.labels(model=model, partition=str(snap.partition)
                                                ).set(len(blob))
        if refused:  # the hash is not the one this chain wrote: rewrite it in full
            for model in refused:
                self.hashes.forget(snap.partition, model)
            log.warning("checkpoint of %s not written: its pending-predictions hash was "
                        "changed by another writer (a worker that lost the partition?); the "
                        "next checkpoint rewrites it in full", ", ".join(refused), extra=extra)
            return True
        if self.partitions is not None and self.partitions.written(snap, self.clock()):
            self._remember_snapshot(snap)  # not if the partition moved on
        return True

    async def flush(self, state: PartitionState, timeout: float) -> bool:
        """Checkpoint ``state`` now (revocation, shutdown); False if Redis would not take it
        (or its learners are not in step with delivery, so must not be checkpointed).
        Waits first for a write the background writer has in hand for the partition (its
        pending-hash delta must land before this one's)."""
        deadline = time.monotonic() + timeout
        inflight = self._inflight.get(state.partition)
        if inflight is not None:
            try:
                await asyncio.wait_for(asyncio.shield(inflight), timeout)
            except TimeoutError:
                log.error("checkpoint not written: the previous write is still in progress; "
                          "the next owner replays from the last written checkpoint",
                          extra={"partition": state.partition})
                return False
        older = self._pending.pop(state.partition, None)
        if not state.in_step:
            if older is not None:
                older.cancel()
            return False
        if state.processed <= state.durable and state.fb.processed <= state.fb.durable:
            if older is not None:
                self._pending[state.partition] = older
            return True
        if older is not None:
            older.cancel()
        job = self.snapshot(state, time.monotonic())
        snap = await self._taken(job if older is None else job.after(older.taken))
        if snap is None:
            return False
        backoff = 0.1
        while not await self._write(snap):
            if time.monotonic() + backoff > deadline:
                log.error("checkpoint not written: Redis unreachable; the next owner "
                          "replays from the previous one",
                          extra={"partition": state.partition, "offset": snap.offset})
                return False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
        if self.partitions is None and state.written(snap, self.clock()):  # tools
            self._remember_snapshot(snap)
        return True

    # -- restoring ------------------------------------------------------------------------
    async def restore(self, partition: int, models: tuple[str, ...],
                      named: dict[str, Identity] | None = None,
                      feedback_named: dict[str, Identity] | None = None) -> Restored:
        """The newest valid checkpoints of ``partition``; waits (bounded) while Redis is down.

        ``named``: the checkpoints the group's committed offset names (its metadata). A
        model's restored version must reflect at least the named offset; an older one is
        taken only when a rollback asked for it (a signed marker, honoured once), or when
        the newer versions are there but refused (corrupt: replaying from the previous one
        is exact), never when they are missing. ``feedback_named``: those the feedback
        topic's commit names (late labels); a checkpoint written when only labels came has
        the events offset the events commit names, and is named by the feedback commit only.

        Raises:
            ServiceError: one line: Redis stayed unreachable for
                ``checkpoint_restore_timeout`` seconds; or a model has no version that
                verifies, its named checkpoint is missing, or only older versions exist
                (unless ``DRIFTLINE_CHECKPOINT_UNVERIFIABLE=fresh``, then the model starts
                afresh, with a warning and ``driftline_checkpoint_fresh_starts_total``).
        """
        named = {m: i for m, i in (named or {}).items() if m in models}
        expected = {m: i.offset for m, i in named.items()}
        found = await self._read(partition, models, expected)
        for _model, _index, exc in found.refusals:
            self.metrics.checkpoint_rejected.labels(reason=exc.reason).inc()
        for model, (offset, learner, digest) in found.older.items():
            if model in found.learners:
                continue
            if model in found.fallback:
                # The newer versions are stored but do not verify: replaying from the
                # previous good one is exact (a gap below the log start is counted).
                log.warning("partition %s model %s: the checkpoint the commit names (offset "
                            "%s) is refused; falling back to offset %s and replaying after it",
                            partition, model, named[model].offset, offset,
                            extra={"partition": partition, "model": model})
                found.learners[model] = (offset, learner)
                found.digests[model] = digest
                continue
            if await self._retrying(partition, lambda m=model, o=offset:
                                    self.store.take_rollback(partition, m, o)):
                log.warning("partition %s model %s rolled back to offset %s as requested "
                            "(the commit named %s)", partition, model, offset,
                            named[model].offset, extra={"partition": partition, "model": model})
                found.learners[model] = (offset, learner)
                found.digests[model] = digest
                found.rolled_back.add(model)
                continue
            self.metrics.checkpoint_rejected.labels(reason="older").inc()
            self.unusable(partition, model, f"its newest checkpoint (offset {offset}) is older "
                           f"than the one the committed offset names ({named[model].offset}); "
                           "refusing to go back (use `driftline checkpoints rollback` to ask "
                           "for it)")
        for model, ident in named.items():
            if model in found.learners:
                also = (feedback_named or {}).get(model)
                if found.learners[model][0] == ident.offset and (
                        found.digests[model] != ident.digest) and (
                        also is None or found.digests[model] != also.digest):
                    log.warning("partition %s model %s: checkpoint at offset %s is not the "
                                "one the commit names (digest differs); it verifies, using it",
                                partition, model, ident.offset,
                                extra={"partition": partition, "model": model})
                continue
            if model in found.older:
                continue  # already refused or started afresh above
            refused = [exc for m, _, exc in found.refusals if m == model]
            why = (f"no stored version verifies: {_refusal_line(refused[0])}" if refused else
                   "Redis has no checkpoint of it (flushed, failed over or evicted?)")
            self.unusable(partition, model, f"the committed offset names its checkpoint at "
                           f"offset {ident.offset} (digest {ident.digest}), but {why}")
        for model in sorted({m for m, _, _ in found.refusals} - found.learners.keys()
                            - named.keys() - found.older.keys()):
            exc = next(e for m, _, e in found.refusals if m == model)
            self.unusable(partition, model, f"no stored version verifies: "
                           f"{_refusal_line(exc)}")
        return found

    def unusable(self, partition: int, model: str, why: str) -> None:
        """Stop (one line), or start ``model`` afresh when the policy says so."""
        if self.settings.checkpoint_unverifiable == "stop":
            raise ServiceError(
                f"partition {partition} model {model}: {why}; not starting it blank (set "
                "DRIFTLINE_CHECKPOINT_UNVERIFIABLE=fresh to start it afresh)")
        self.metrics.fresh_starts.labels(model=model).inc()
        log.warning("partition %s model %s: %s; starting it afresh "
                    "(DRIFTLINE_CHECKPOINT_UNVERIFIABLE=fresh)", partition, model, why,
                    extra={"partition": partition, "model": model})

    async def _read(self, partition: int, models: tuple[str, ...],
                    expected: dict[str, int]) -> Restored:
        if expected:
            return await self._retrying(
                partition, lambda: self.store.restore(partition, models, expected))
        return await self._retrying(partition, lambda: self.store.restore(partition, models))

    async def _retrying(self, partition: int, call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()`` (a request to Redis), again while Redis is unreachable, up to
        ``checkpoint_restore_timeout`` seconds."""
        deadline = time.monotonic() + self.settings.checkpoint_restore_timeout
        backoff = 0.1
        while True:
            try:
                return await call()
            except _RETRYABLE as exc:
                if time.monotonic() + backoff > deadline:
                    raise ServiceError(
                        f"Redis unreachable for {self.settings.checkpoint_restore_timeout:.0f}s "
                        f"while restoring partition {partition}: {exc}") from None
                log.warning("Redis unreachable while restoring, waiting: %r", exc,
                            extra={"partition": partition})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)


    async def restore_pending(self, partition: int, found: Restored,
                              feedback: PartitionFeedback) -> dict[str, int]:
        """Load each restored model's pending-predictions hash into ``feedback`` (see
        :meth:`streams.pending_checkpoints.PendingHashes.restore`; Redis read in pages,
        waiting while it is down). Returns each model's feedback offset. A hash that does
        not match its checkpoint is an unusable checkpoint (:meth:`unusable`)."""
        def refused(model: str, why: str) -> None:
            self.metrics.checkpoint_rejected.labels(reason="invalid").inc()
            self.unusable(partition, model, why)

        return await self.hashes.restore(
            partition, found, feedback,
            lambda p, m: self._retrying(p, lambda: self.store.pending(p, m)), refused)


class SnapshotJob:
    """A snapshot whose blobs are ready (``taken``) or still being serialised by a forked
    child (``forked``; ``taken`` then holds the offsets, with empty blobs)."""

    def __init__(self, taken: Snapshot, forked: Forked | None = None) -> None:
        self.taken = taken
        self.forked = forked

    async def result(self) -> Snapshot:
        """The snapshot with its blobs.

        Raises:
            SnapshotFailed: the child failed, died, or wrote other models than ``taken``.
        """
        if self.forked is None:
            return self.taken
        blobs = unpack(await self.forked.result())
        if blobs.keys() != self.taken.blobs.keys():
            raise SnapshotFailed(f"snapshot child wrote models {sorted(blobs)}, not "
                                 f"{sorted(self.taken.blobs)}")
        return replace(self.taken, blobs={name: (offset, blobs[name]) for name, (offset, _)
                                          in self.taken.blobs.items()})

    def after(self, older: Snapshot) -> "SnapshotJob":
        """This job with ``older``'s pending-hash writes (never written) folded in before
        its own (:func:`streams.pending_checkpoints.combine`)."""
        return SnapshotJob(combine(older, self.taken), self.forked)

    def cancel(self) -> None:
        """Not wanted any more: stop its child."""
        if self.forked is not None:
            self.forked.cancel()


def _unwritten(name: str, learner: Learner, offset: int) -> bytes:
    """The parent's serialiser while a child serialises: writes nothing."""
    return b""


def _refusal_line(exc: CheckpointError) -> str:
    """The refusal's own line, with the likely cause of a bad signature."""
    if exc.reason == "signature":
        return f"{exc} (wrong DRIFTLINE_CHECKPOINT_KEY, or altered in Redis?)"
    return str(exc)
