"""Soak: one worker at a steady offered rate; its RSS sampled every ``every`` seconds.

The slope of a least-squares line through the samples (MiB per minute) says whether
memory grows; the first minute (warm-up: imports settle, caches fill) is left out of
the fit when the run is long enough to leave at least three samples.

>>> slope([(0.0, 100.0), (60.0, 101.0), (120.0, 102.0)])
1.0
"""

import asyncio
import time
from pathlib import Path

from bench.workload import make_events
from schemas.settings import Settings
from streams.kafka_clients import make_producer


def rss_mib(pid: int) -> float:
    """Resident set size of a live process, MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def slope(samples: list[tuple[float, float]]) -> float:
    """MiB per minute of the least-squares line through ``(seconds, MiB)`` samples."""
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(m for _, m in samples) / n
    var = sum((t - mx) ** 2 for t, _ in samples) or 1.0
    return sum((t - mx) * (m - my) for t, m in samples) / var * 60.0


async def offer(bootstrap: str, topic: str, rate: int, seconds: float, pid: int,
                every: float = 10.0) -> dict[str, object]:
    """Send events to ``topic`` at ``rate`` per second for ``seconds``, sampling the RSS of
    process ``pid`` every ``every`` seconds."""
    values = make_events(min(50_000, max(1, int(rate * seconds))), seed=11)
    producer = make_producer(Settings(kafka_bootstrap=bootstrap), linger_ms=5,
                             enable_idempotence=False, max_request_size=1048576)
    await producer.start()
    samples: list[tuple[float, float]] = []
    sent = 0
    try:
        started = time.monotonic()
        next_sample = started
        while (now := time.monotonic()) - started < seconds:
            if now >= next_sample:
                samples.append((now - started, rss_mib(pid)))
                next_sample += every
            due = int((now - started) * rate)
            pending = []
            while sent < due:
                pending.append(await producer.send(topic, values[sent % len(values)],
                                                   key=str(sent).encode()))
                sent += 1
            await asyncio.gather(*pending)
            await asyncio.sleep(0.01)  # pacing to the offered rate
        samples.append((time.monotonic() - started, rss_mib(pid)))
    finally:
        await producer.stop()
    fit = [s for s in samples if s[0] >= 60.0]
    fit = fit if len(fit) >= 3 else samples
    return {"rate": rate, "seconds": seconds, "sent": sent, "samples": samples,
            "slope_mib_per_min": slope(fit), "start_mib": samples[0][1],
            "end_mib": samples[-1][1], "peak_mib": max(m for _, m in samples)}
