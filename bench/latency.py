"""Latency from produce to prediction received, at a fixed offered rate."""

import asyncio
import time

import orjson

from bench.workload import make_events
from schemas.settings import Settings
from streams.kafka_clients import make_producer, make_reader


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of already sorted values (nearest rank).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.0
    """
    index = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


async def measure_latency(bootstrap: str, prefix: str, rate: int, seconds: float,
                          warmup: int) -> dict[str, float]:
    """Send ``rate`` events/s for ``seconds`` (after ``warmup`` unmeasured events) and
    time each until its prediction arrives."""
    n = int(rate * seconds)
    values = make_events(warmup + n, seed=rate)
    sent_at: dict[str, float] = {}
    received: dict[str, float] = {}
    settings = Settings(kafka_bootstrap=bootstrap)
    consumer = make_reader(settings, f"{prefix}predictions", auto_offset_reset="latest",
                           fetch_max_wait_ms=5)
    producer = make_producer(settings, linger_ms=0, enable_idempotence=False,
                             max_batch_size=16384, max_request_size=1048576)
    await consumer.start()
    await producer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)

        async def read() -> None:
            while len(received) < warmup + n:
                batch = await consumer.getmany(timeout_ms=100)
                now = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        received[orjson.loads(record.value)["event_id"]] = now

        reader = asyncio.create_task(read())
        started = time.perf_counter()
        for i, value in enumerate(values):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing to the offered rate
            sent_at[f"e{i}"] = time.perf_counter()
            await producer.send(f"{prefix}events", value, key=str(i).encode())
        await asyncio.wait_for(reader, 120)
    finally:
        await producer.stop()
        await consumer.stop()
    lat = sorted((received[k] - sent_at[k]) * 1000.0 for k in list(sent_at)[warmup:])
    achieved = n / max(1e-9, sent_at[f"e{warmup + n - 1}"] - sent_at[f"e{warmup}"])
    return {"rate": rate, "events": n, "achieved_rate": round(achieved),
            "p50_ms": percentile(lat, 0.50), "p95_ms": percentile(lat, 0.95),
            "p99_ms": percentile(lat, 0.99), "max_ms": lat[-1]}
