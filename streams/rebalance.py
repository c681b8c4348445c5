"""Rebalances: what happens when partitions are assigned to or revoked from this worker.

aiokafka awaits these callbacks before the group moves on, so they must return
quickly. Assignment only creates each partition's state and pauses it;
restoring from Redis (which can take long for big models) runs in a task per
partition, which seeks just past the restored offset and resumes the partition
when done. Until then the partition is not ready and nothing of it is fetched.
Revocation cancels restores in flight, checkpoints and commits what it can
(bounded), and forgets the partitions.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition

from learners.partition_state import Partitions, PartitionState, Phase
from learners.registry import ModelRegistry
from streams.checkpointer import Checkpointer
from streams.commits import Committer
from streams.metrics import Metrics

log = logging.getLogger(__name__)


class Positions(Protocol):
    """What rebalancing needs of the consumer (aiokafka's ``AIOKafkaConsumer``)."""

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Fetch ``partition`` from ``offset`` next."""

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop fetching ``partitions``."""

    def resume(self, *partitions: TopicPartition) -> None:
        """Fetch ``partitions`` again."""


class Rebalancer(ConsumerRebalanceListener):
    """Keeps the partition states in step with the group's assignment.

    ``lock`` is held while a batch is processed, so partitions never change under it;
    ``on_fatal`` is called with an error that must stop the worker (restore failed).
    """

    def __init__(self, consumer: Positions, partitions: Partitions, registry: ModelRegistry,
                 committer: Committer, checkpointer: Checkpointer | None, metrics: Metrics,
                 lock: asyncio.Lock, on_fatal: Callable[[BaseException], None],
                 feedback_topic: str | None = None,
                 on_moved: Callable[[int, dict[str, int | None] | None], None] | None = None
                 ) -> None:
        self.consumer = consumer
        self.partitions = partitions
        self.registry = registry
        self.committer = committer
        self.checkpointer = checkpointer
        self.metrics = metrics
        self.lock = lock
        self.on_fatal = on_fatal
        self.restoring: dict[int, asyncio.Task[None]] = {}
        #: Late labels: the feedback topic (co-partitioned with the events topic), and
        #: what to tell when a partition's position changes (the merge buffers).
        self.feedback_topic = feedback_topic
        self.on_moved = on_moved

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        """Before partitions move: stop their restores, checkpoint, commit, forget them."""
        numbers = {tp.partition for tp in revoked}
        await self._cancel(numbers)
        async with self.lock:
            try:
                await self.committer.flush(numbers)
                await self.committer.commit(numbers)
            except Exception:
                log.exception("checkpoint or commit at revocation failed; the next owner "
                              "replays from the last written checkpoint")
            finally:
                for partition in numbers:
                    self.partitions.revoke(partition)
                    if self.on_moved is not None:
                        self.on_moved(partition, None)
                self.metrics.assigned.set(len(self.partitions))
        log.info("partitions revoked: %s", sorted(numbers))

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        """New partitions: a fresh state each, paused and restored in the background."""
        async with self.lock:
            for partition in sorted({tp.partition for tp in assigned}):
                tps = sorted(tp for tp in assigned if tp.partition == partition)
                state = self.partitions.assign(partition)  # always from Redis
                if self.on_moved is not None:
                    self.on_moved(partition, dict.fromkeys(tp.topic for tp in tps))
                if self.checkpointer is None:
                    state.restore({}, time.monotonic(), time.time())
                    continue
                self.consumer.pause(*tps)
                self.restoring[partition] = asyncio.create_task(
                    self._restore(tps, state), name=f"driftline-restore-{partition}")
            self.metrics.assigned.set(len(self.partitions))
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))

    async def stop(self) -> None:
        """Cancel every restore in flight."""
        await self._cancel(set(self.restoring))

    async def _cancel(self, numbers: set[int]) -> None:
        tasks = [self.restoring.pop(p) for p in numbers if p in self.restoring]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _restore(self, tps: list[TopicPartition], state: PartitionState) -> None:
        assert self.checkpointer is not None
        tp = next((t for t in tps if t.topic != self.feedback_topic), tps[0])
        try:
            found = await self.checkpointer.restore(tp.partition, self.registry.names)
            fb_offsets = await self.checkpointer.restore_pending(tp.partition, found,
                                                                 state.feedback)
            starts = ({} if found.learners or len(tps) < 2
                      else await self._starts(tps))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("restore failed, stopping: %s", exc)
            self.on_fatal(exc)
            return
        finally:
            if self.restoring.get(tp.partition) is asyncio.current_task():
                del self.restoring[tp.partition]
        if self.partitions.get(tp.partition) is not state or state.phase is not Phase.RESTORING:
            return  # revoked or re-assigned meanwhile
        for name, (_, learner) in list(found.learners.items()):
            if not learner.adopt(self.registry.config.models[name], self.registry.cooldown):
                log.warning("model %s changed its pipeline or task since its checkpoint: "
                            "starting it afresh", name,
                            extra={"model": name, "partition": tp.partition})
                del found.learners[name]
        for name in list(state.feedback.stores):
            if name not in found.learners:  # started afresh: so are its pending predictions
                del state.feedback.stores[name]
        state.restore(found.learners, time.monotonic(), time.time(), fb_offsets)
        if found.learners:
            positions: dict[str, int | None] = {
                t.topic: (state.fb.processed if t.topic == self.feedback_topic
                          else state.offset) + 1 for t in tps}
            for t in tps:
                self.consumer.seek(t, positions[t.topic])
            if self.on_moved is not None:
                self.on_moved(tp.partition, positions)
            log.info("partition %s restored at offset %s (%s)", tp.partition, state.offset,
                     ", ".join(f"{m}: {o}" for m, (o, _) in found.learners.items()),
                     extra={"partition": tp.partition, "offset": state.offset})
        elif starts:  # nothing checkpointed: from the group's offsets, positions known
            for t, offset in starts.items():
                self.consumer.seek(t, offset)
            if self.on_moved is not None:
                self.on_moved(tp.partition, {t.topic: o for t, o in starts.items()})
        self.consumer.resume(*tps)

    async def _starts(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Where each of ``tps`` starts without a checkpoint: the group's committed offset,
        else the log start (the merge of events and feedback needs both positions)."""
        consumer: Any = self.consumer  # aiokafka's AIOKafkaConsumer
        starts = {}
        for t in tps:
            committed = await consumer.committed(t)
            if committed is None:
                committed = (await consumer.beginning_offsets([t]))[t]
            starts[t] = committed
        return starts
