"""When to checkpoint and what to commit: the only code that commits offsets.

A partition's committed offset moves only to what its
:class:`learners.partition_state.PartitionState` says may be committed: delivered
and (with checkpoints on) covered by a written checkpoint. With checkpoints on, each
commit's metadata names that checkpoint (:mod:`streams.commit_metadata`). The feedback
topic-partition (late labels) is committed by the same rule, its metadata naming the
checkpoint that covers its offset.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from learners.partition_state import Partitions, PartitionState
from schemas.settings import Settings
from streams import commit_metadata
from streams.checkpointer import Checkpointer, SnapshotJob

log = logging.getLogger(__name__)


class OffsetCommitter(Protocol):
    """The consumer's commit (aiokafka's ``AIOKafkaConsumer.commit``)."""

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Commit ``offsets`` (the next offset to read, per partition) for the group."""


class Committer:
    """Snapshots due partitions and commits what each may commit.

    Parameters
    ----------
    consumer
        Commits offsets for the group.
    partitions
        The worker's partition states.
    checkpointer
        Writes snapshots (None: checkpoints off, commit what is delivered).
    topic
        The events topic.
    clock
        Monotonic seconds (scheduling).
    """

    def __init__(self, consumer: OffsetCommitter, partitions: Partitions,
                 checkpointer: Checkpointer | None, settings: Settings, topic: str,
                 clock: Callable[[], float] = time.monotonic,
                 feedback_topic: str | None = None) -> None:
        self.consumer = consumer
        self.partitions = partitions
        self.checkpointer = checkpointer
        self.settings = settings
        self.topic = topic
        self.clock = clock
        self.next_commit = 0.0
        #: Late labels: the feedback topic, committed by the same rule (None: not consumed).
        self.feedback_topic = feedback_topic
        #: The periodic commit in flight (:meth:`commit_in_background`).
        self._background: asyncio.Future[None] | None = None
        #: Per partition, a snapshot taken ahead of delivery, held until delivery covers
        #: it (:meth:`release`); no newer one is taken meanwhile.
        self._held: dict[int, SnapshotJob] = {}

    def commit_due(self) -> bool:
        """True every ``commit_interval`` seconds."""
        return self.clock() >= self.next_commit

    def checkpoint_due(self) -> None:
        """Snapshot every partition whose checkpoint is due and queue it for writing, or
        hold it while the outputs of the events it reflects are still in flight."""
        cp = self.checkpointer
        if cp is None:
            return
        self.release()
        now = self.clock()
        every, interval = self.settings.checkpoint_every, self.settings.checkpoint_interval
        for partition, state in self.partitions.items():
            if partition not in self._held and state.due(now, every, interval):
                job = cp.snapshot(state, now)
                if state.covers(job.taken):
                    cp.submit(job)
                else:
                    self._held[partition] = job

    def release(self) -> None:
        """Queue each held snapshot that delivery now covers for writing; forget those of
        partitions that moved away or failed (never written)."""
        cp = self.checkpointer
        for partition, job in list(self._held.items()):
            state = self.partitions.active(partition)
            if state is None or state.generation != job.taken.generation:
                del self._held[partition]
                if cp is not None:
                    cp.discard(job)
            elif state.covers(job.taken):
                del self._held[partition]
                if cp is not None:
                    cp.submit(job)

    async def flush(self, which: Iterable[int], budget: float = 10.0) -> None:
        """Checkpoint ``which`` partitions now, within one ``budget`` of seconds for all
        (rebalances and shutdown must not stall). The caller has settled what was in
        flight, so held snapshots are released first (their pending-hash writes are folded
        into the flush's)."""
        if self.checkpointer is None:
            return
        self.release()
        for partition in which:  # not covered after all (a failed delivery): never written
            if (job := self._held.pop(partition, None)) is not None:
                self.checkpointer.discard(job)
        deadline = self.clock() + budget
        for partition in sorted(which):
            state = self.partitions.active(partition)
            if state is not None:
                await self.checkpointer.flush(state, timeout=max(0.1, deadline - self.clock()))

    def metadata(self, partition: int, generation: int, upto: int,
                 feedback: bool = False) -> str:
        """The commit metadata naming the checkpoints that cover ``upto`` (of the feedback
        topic-partition with ``feedback``)."""
        if self.checkpointer is None:
            return ""
        ids = self.checkpointer.identity(partition, generation, upto, feedback)
        try:
            return commit_metadata.encode(ids) if ids else ""
        except ValueError as exc:
            log.error("checkpoints not named in the offset commit: %s", exc)
            return ""

    async def commit(self, which: Iterable[int] | None = None) -> None:
        """Commit, per partition, the offset after the last event delivered and
        checkpointed; a failed commit is logged and retried next time. Waits for a
        background commit still in flight first (commits reach the broker in order)."""
        await self.settled()
        self._reap()
        await self._send(*self._offsets(which))

    def commit_in_background(self) -> None:
        """Start the periodic commit and return without waiting for the broker: the
        offsets are taken now (delivered and checkpointed, as :meth:`commit`), so the
        loop goes on while the broker answers. One at a time: while the last is in
        flight, nothing is started (the commit stays due).

        Raises:
            Exception: what the last background commit raised (a ``KafkaError`` is
                logged and retried instead).
        """
        if self._background is not None and not self._background.done():
            return
        self._reap()
        self._background = asyncio.ensure_future(self._send(*self._offsets(None)))

    async def settled(self) -> None:
        """Wait for the background commit in flight, if any (its failure is raised by
        the next :meth:`commit` or :meth:`commit_in_background`)."""
        if self._background is not None and not self._background.done():
            await asyncio.wait([self._background])

    def _reap(self) -> None:
        """Forget the finished background commit; raise what it raised."""
        task, self._background = self._background, None
        if task is not None and not task.cancelled() and (exc := task.exception()):
            raise exc

    def _offsets(self, which: Iterable[int] | None) -> tuple[
            dict[TopicPartition, OffsetAndMetadata], dict[int, tuple[PartitionState, int]],
            dict[int, tuple[PartitionState, int]]]:
        """What may be committed now: offsets, and (state, offset) per partition of the
        events and of the feedback topic."""
        self.next_commit = self.clock() + self.settings.commit_interval
        wanted = None if which is None else set(which)
        offsets, states, feedback = {}, {}, {}
        for partition, state in self.partitions.items():
            upto = state.committable() if wanted is None or partition in wanted else None
            if upto is not None:
                offsets[TopicPartition(self.topic, partition)] = OffsetAndMetadata(
                    upto + 1, self.metadata(partition, state.generation, upto))
                states[partition] = (state, upto)
            fb = (state.committable_feedback() if self.feedback_topic is not None
                  and (wanted is None or partition in wanted) else None)
            if fb is not None:
                assert self.feedback_topic is not None
                offsets[TopicPartition(self.feedback_topic, partition)] = OffsetAndMetadata(
                    fb + 1, self.metadata(partition, state.generation, fb, feedback=True))
                feedback[partition] = (state, fb)
        return offsets, states, feedback

    async def _send(self, offsets: dict[TopicPartition, OffsetAndMetadata],
                    states: dict[int, tuple[PartitionState, int]],
                    feedback: dict[int, tuple[PartitionState, int]]) -> None:
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed (will retry): %r", exc)
            return
        for partition, (state, upto) in states.items():
            if self.partitions.get(partition) is state and state.active:
                state.commit(upto)
        for partition, (state, upto) in feedback.items():
            if self.partitions.get(partition) is state and state.active:
                state.commit_feedback(upto)
