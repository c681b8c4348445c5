"""Produce to and consume from the real broker in tests."""

import asyncio
from collections.abc import Callable, Iterable, Sequence

import orjson
from aiokafka.structs import ConsumerRecord, RecordMetadata

from schemas.settings import Settings
from streams.kafka_clients import create_topics, make_admin, make_producer
from streams.topic_reader import count_records, read_topic, read_until


def create_topic(bootstrap: str, name: str, partitions: int,
                 configs: dict[str, str] | None = None) -> None:
    """Create ``name`` with ``partitions`` partitions (4 MiB messages allowed unless
    ``configs`` says otherwise)."""
    created = asyncio.run(create_topics(
        Settings(kafka_bootstrap=bootstrap), {name: partitions},
        configs={name: configs or {"max.message.bytes": str(4 * 1024 * 1024)}}))
    assert created == [name], f"topic {name} exists already"


def produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]],
            partition: int | None = None) -> list[RecordMetadata]:
    """Send (key, value) pairs in order (to ``partition`` if given); return where each landed."""
    async def run() -> list[RecordMetadata]:
        producer = make_producer(Settings(kafka_bootstrap=bootstrap), linger_ms=0,
                                 max_request_size=4 * 1024 * 1024)
        await producer.start()
        try:
            futures = [await producer.send(topic, value, key=key, partition=partition)
                       for key, value in messages]
            return list(await asyncio.gather(*futures))
        finally:
            await producer.stop()
    return asyncio.run(run())


def consume(bootstrap: str, topic: str, expected: int, timeout: float,
            settle: float = 1.0) -> list[ConsumerRecord]:
    """Read ``topic`` from the start until ``expected`` records arrived (plus ``settle``
    seconds to catch extras); fail if fewer arrive within ``timeout``."""
    try:
        return asyncio.run(read_topic(bootstrap, topic, expected, timeout, settle))
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


def consume_until(bootstrap: str, topic: str, done: Callable[[list[ConsumerRecord]], bool],
                  timeout: float) -> list[ConsumerRecord]:
    """Read ``topic`` from the start until ``done(records)``; fail after ``timeout``."""
    try:
        return asyncio.run(read_until(bootstrap, topic, done, timeout))
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


def consume_until_ids(bootstrap: str, topic: str, event_ids: Iterable[str],
                      timeout: float) -> list[ConsumerRecord]:
    """Read ``topic`` (JSON values with an ``event_id``) from the start until every one of
    ``event_ids`` arrived; fail after ``timeout``. Each record is parsed once."""
    missing = set(event_ids)
    read = 0

    def done(records: list[ConsumerRecord]) -> bool:
        nonlocal read
        missing.difference_update(orjson.loads(r.value)["event_id"] for r in records[read:])
        read = len(records)
        return not missing
    return consume_until(bootstrap, topic, done, timeout)


def count(bootstrap: str, topic: str) -> int:
    """Records in ``topic``."""
    return asyncio.run(count_records(bootstrap, topic))


def set_topic_config(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    """Change a topic's configuration on the broker."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async def run() -> None:
        admin = make_admin(Settings(kafka_bootstrap=bootstrap))
        await admin.start()
        try:
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
        finally:
            await admin.close()
    asyncio.run(run())
