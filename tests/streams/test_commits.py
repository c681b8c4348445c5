"""The periodic commit sent in the background (Committer.commit_in_background), with an
in-memory consumer whose commits complete only when the test says so."""

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from learners.partition_state import Partitions
from learners.registry import ModelRegistry
from schemas.models_file import ModelsConfig
from schemas.settings import Settings
from streams.commits import Committer

TOPIC = "t.events"


class GatedConsumer:
    """Records each commit (partition -> offset) once ``gate`` opens; ``fail`` raises."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started: list[dict[int, int]] = []
        self.commits: list[dict[int, int]] = []
        self.fail: Exception | None = None

    async def commit(self, offsets):
        wanted = {tp.partition: meta.offset for tp, meta in offsets.items()}
        self.started.append(wanted)
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.commits.append(wanted)


def delivered(partitions: Partitions, partition: int, upto: int) -> None:
    state = partitions.active(partition) or partitions.assign(partition)
    if not state.active:
        state.restore({})
    for offset in range(state.delivered + 1, upto + 1):
        state.advance(offset)
    state.deliver(upto)


def committer(consumer: GatedConsumer,
              clock=lambda: 0.0) -> tuple[Committer, Partitions]:
    settings = Settings(topic_prefix="t.", checkpoints=False, commit_interval=1.0)
    partitions = Partitions(ModelRegistry(ModelsConfig.default(), 100), checkpoints=False)
    return Committer(consumer, partitions, None, settings, TOPIC, clock=clock), partitions


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_the_background_commit_returns_at_once_with_the_offsets_of_that_moment():
    asyncio.run(_the_background_commit_returns_at_once_with_the_offsets_of_that_moment())


async def _the_background_commit_returns_at_once_with_the_offsets_of_that_moment():
    consumer = GatedConsumer()
    com, partitions = committer(consumer)
    delivered(partitions, 0, 4)
    com.commit_in_background()  # returns before the broker answers
    delivered(partitions, 0, 9)  # the loop goes on meanwhile
    await settle()
    assert consumer.started == [{0: 5}] and consumer.commits == []
    assert partitions.active(0).committed != 4  # not marked before the broker answered
    consumer.gate.set()
    await com.settled()
    assert consumer.commits == [{0: 5}]
    assert partitions.active(0).committable() == 9


def test_one_background_commit_at_a_time_and_an_awaited_commit_comes_after_it():
    asyncio.run(_one_background_commit_at_a_time_and_an_awaited_commit_comes_after_it())


async def _one_background_commit_at_a_time_and_an_awaited_commit_comes_after_it():
    consumer = GatedConsumer()
    now = [0.0]
    com, partitions = committer(consumer, clock=lambda: now[0])
    delivered(partitions, 0, 2)
    com.commit_in_background()
    delivered(partitions, 0, 6)
    now[0] = 2.0  # a commit interval later, the first is still in flight
    assert com.commit_due()
    com.commit_in_background()  # nothing started
    await settle()
    assert consumer.started == [{0: 3}]
    assert com.commit_due()  # stays due: the next loop step tries again
    shutdown = asyncio.ensure_future(com.commit([0]))
    await settle()
    assert consumer.started == [{0: 3}]  # waits for the one in flight
    consumer.gate.set()
    await shutdown
    assert consumer.commits == [{0: 3}, {0: 7}]  # in order: never moves back


def test_a_failed_background_commit_is_retried_or_raised():
    asyncio.run(_a_failed_background_commit_is_retried_or_raised())


async def _a_failed_background_commit_is_retried_or_raised():
    consumer = GatedConsumer()
    com, partitions = committer(consumer)
    delivered(partitions, 0, 1)
    consumer.fail = KafkaConnectionError("broker away")
    com.commit_in_background()
    consumer.gate.set()
    await com.settled()
    assert partitions.active(0).committable() == 1  # not committed: tried again
    consumer.fail = RuntimeError("not a Kafka error")
    com.commit_in_background()  # the Kafka error was logged: this one starts
    await com.settled()
    with pytest.raises(RuntimeError, match="not a Kafka error"):
        com.commit_in_background()
    consumer.fail = None
    com.commit_in_background()  # raised once; the next one runs
    await com.settled()
    assert consumer.commits == [{0: 2}]
