"""The benchmark workload: events with 10 numeric features and a label, pre-produced."""

import asyncio
import random
from collections.abc import Iterable
from typing import Any

import orjson

from schemas.settings import Settings
from streams.kafka_clients import create_topics as create
from streams.kafka_clients import make_producer


def make_events(n: int, seed: int = 42, model: str = "default") -> list[bytes]:
    """``n`` JSON events; the label is a noisy linear function of the features."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        features = {f"x{j}": round(rnd.gauss(0, 1), 6) for j in range(10)}
        label = features["x0"] + 0.5 * features["x1"] - features["x2"] + rnd.gauss(0, 0.5) > 0
        out.append(orjson.dumps({"event_id": f"e{i}", "model": model, "features": features,
                                 "label": label}))
    return out


async def create_topics(bootstrap: str, names: dict[str, int],
                        append_time: tuple[str, ...] = ()) -> None:
    """Create topics (name -> partitions); those in ``append_time`` stamp LogAppendTime,
    so a record's timestamp is when the broker acknowledged it."""
    await create(Settings(kafka_bootstrap=bootstrap), names, configs={
        name: {"message.timestamp.type": "LogAppendTime" if name in append_time
               else "CreateTime", "max.message.bytes": str(4 * 1024 * 1024)}
        for name in names})


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Send ``values`` keyed by their index, as fast as the broker takes them."""
    await send_all(bootstrap, ({"topic": topic, "value": value, "key": str(i).encode()}
                               for i, value in enumerate(values)))


async def send_all(bootstrap: str, messages: Iterable[dict[str, Any]]) -> None:
    """Send each message (``AIOKafkaProducer.send`` keyword arguments) in order, as fast as
    the broker takes them: acknowledgements awaited 5,000 at a time."""
    producer = make_producer(Settings(kafka_bootstrap=bootstrap), linger_ms=20,
                             enable_idempotence=False, max_request_size=1048576)
    await producer.start()
    try:
        pending = []
        for message in messages:
            pending.append(await producer.send(**message))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
