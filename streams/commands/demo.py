"""``driftline demo``: bring the services up and push one event through Kafka and Redis."""

import asyncio
import time

import orjson
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.settings import Settings
from streams.localservices import stack


async def _round_trip(addresses: stack.Addresses, topic: str) -> tuple[bytes, bytes]:
    import redis.asyncio as aioredis

    event = {"event_id": f"demo-{time.time_ns()}", "model": "default",
             "features": {"x0": 0.5, "x1": 1.5}, "label": True}
    producer = AIOKafkaProducer(bootstrap_servers=addresses.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, orjson.dumps(event), key=b"demo")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=addresses.kafka_bootstrap,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    client = aioredis.Redis.from_url(addresses.redis_url)
    try:
        await client.set("driftline:demo:last", record.value)
        stored = await client.get("driftline:demo:last")
    finally:
        await client.aclose()
    return record.value, stored


def demo() -> None:
    """Start Kafka and Redis, send one event through both and print it."""
    addresses = stack.up()
    topic = Settings().topic("events")
    typer.echo(f"kafka {addresses.kafka_bootstrap}  redis {addresses.redis_url}")
    consumed, stored = asyncio.run(_round_trip(addresses, topic))
    typer.echo(f"consumed from {topic}: {consumed.decode()}")
    typer.echo(f"read back from redis: {stored.decode()}")
    typer.echo("services keep running; stop them with: driftline services down")
