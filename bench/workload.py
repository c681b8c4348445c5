"""The benchmark workload: events with 10 numeric features and a label, pre-produced."""

import asyncio
import random

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


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
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([
            NewTopic(name, partitions, 1, topic_configs={
                "message.timestamp.type": "LogAppendTime" if name in append_time
                else "CreateTime", "max.message.bytes": str(4 * 1024 * 1024)})
            for name, partitions in names.items()])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Send ``values`` keyed by their index, as fast as the broker takes them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=512 * 1024)
    await producer.start()
    try:
        pending = []
        for i, value in enumerate(values):
            pending.append(await producer.send(topic, value, key=str(i).encode()))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
