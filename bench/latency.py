"""Latency from produce to prediction received, at a fixed offered rate, and where it goes.

The events and predictions topics stamp ``LogAppendTime``, so each event's broker
append time comes back in its produce acknowledgement and each prediction's in its
record. With a worker traced by :mod:`bench.latency_trace`, every event's path is cut
into phases (wall-clock ms; the broker's stamps have 1 ms resolution):

``produce``  harness send -> event appended (the harness's producer and the broker)
``fetch``    event appended -> worker's ``getmany`` returned it
``process``  fetched -> its slice processed (scoring + waiting behind the slice)
``publish``  processed -> its outputs handed to the producer
``ack``      handed over -> the broker acknowledged all of the slice's outputs
``read``     acknowledged -> harness received the prediction (the measuring consumer)
``worker``   event appended -> outputs acknowledged: what Driftline itself adds
"""

import asyncio
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.workload import make_events
from schemas.settings import Settings
from streams.kafka_clients import make_producer, make_reader
from streams.localservices.workers import WorkerProcess

ROOT = Path(__file__).resolve().parents[1]


class TracedWorker(WorkerProcess):
    """``driftline worker`` run by :mod:`bench.latency_trace` (phase timestamps)."""

    def start(self) -> "TracedWorker":
        """Start the process (in its own session, so a signal reaches only it)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.latency_trace"],
                                         env=self.env, cwd=ROOT, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self


def parse_variants(text: str) -> dict[str, dict[str, str]]:
    """``'name:VAR=v,VAR2=w;other:'`` -> {name: environment}; '' -> one plain variant.

    >>> parse_variants("base:;gc:BENCH_GC_FREEZE=1")
    {'base': {}, 'gc': {'BENCH_GC_FREEZE': '1'}}
    >>> parse_variants("")
    {'': {}}
    """
    variants: dict[str, dict[str, str]] = {}
    for part in filter(None, text.split(";")) if text else [""]:
        name, _, assignments = part.partition(":")
        variants[name] = dict(a.split("=", 1) for a in assignments.split(",") if a)
    return variants


def alternated(run: Callable[..., dict[str, Any]], rates: list[int], variants: str,
               repeats: int) -> list[dict[str, Any]]:
    """``run(rate, **environment)`` for every rate and variant, variants alternated within
    each of ``repeats`` rounds (drift in a shared machine hits all alike); with several
    runs, each rate and variant also gets the median of its p50 / p99 over the rounds."""
    results = []
    for round_ in range(repeats):
        for rate in rates:
            for name, env in parse_variants(variants).items():
                result = run(rate, **env) | {"variant": name, "round": round_}
                print(f"  {name or 'latency'} {rate}/s #{round_ + 1}: p50 "
                      f"{result['p50_ms']:.1f} p99 {result['p99_ms']:.1f} ms", flush=True)
                results.append(result)
    if repeats > 1:
        for rate in rates:
            for name in parse_variants(variants):
                runs = [r for r in results if r["rate"] == rate and r["variant"] == name]
                summary = {k: round(statistics.median(r[k] for r in runs), 2)
                           for k in ("p50_ms", "p99_ms")}
                print(f"  median {name or 'latency'} {rate}/s over {len(runs)}: {summary}",
                      flush=True)
                results.append({"rate": rate, "variant": name, "median_of": len(runs),
                                **summary})
    return results


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of already sorted values (nearest rank).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.0
    """
    index = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


def quantiles(values: list[float]) -> dict[str, float]:
    """p50 / p99 / p99.9 / max of ``values`` (ms), rounded to 0.01.

    >>> quantiles([1.0, 2.0, 3.0])["p50"]
    2.0
    """
    s = sorted(values)
    return {"p50": round(percentile(s, 0.5), 2), "p99": round(percentile(s, 0.99), 2),
            "p99.9": round(percentile(s, 0.999), 2), "max": round(s[-1], 2)}


async def _read(bootstrap: str, topic: str, count: int,
                ready: Callable[[], None]) -> dict[int, tuple[float, int]]:
    """Read ``count`` predictions of ``topic`` (from its end, once assigned: ``ready()``);
    event index -> (wall-clock s when received, the prediction's append time, ms)."""
    received: dict[int, tuple[float, int]] = {}
    consumer = make_reader(Settings(kafka_bootstrap=bootstrap), topic,
                           auto_offset_reset="latest", fetch_max_wait_ms=5)
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        await consumer.seek_to_end()
        for tp in consumer.assignment():
            await consumer.position(tp)
        ready()
        deadline = time.monotonic() + 180
        while len(received) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batch.values():
                for record in records:
                    event_id = orjson.loads(record.value)["event_id"]
                    received[int(event_id[1:])] = (now, record.timestamp)
    finally:
        await consumer.stop()
    return received


def _reader_process(bootstrap: str, topic: str, count: int, ready: Any, out: Any) -> None:
    """:func:`_read` in a process of its own: the paced producer never delays a read."""
    out.put(asyncio.run(_read(bootstrap, topic, count, ready.set)))


async def measure_latency(bootstrap: str, prefix: str, rate: int, seconds: float,
                          warmup: int, trace: Path | None = None,
                          stop_worker: Any = None, reader: str = "process") -> dict[str, Any]:
    """Send ``rate`` events/s for ``seconds`` (after ``warmup`` unmeasured events) and
    time each until its prediction arrives (ms). The predictions are read by a process
    of their own (``reader="process"``; ``"loop"``: a task beside the producer, as the
    bench did before). With ``trace`` (the file a :mod:`bench.latency_trace` worker
    writes when ``stop_worker()`` stops it), add ``phases``: p50/p99/p99.9/max of each
    phase (module docstring)."""
    n = int(rate * seconds)
    values = make_events(warmup + n, seed=rate)
    sent_at: list[float] = []
    acks: list[Any] = []
    topic = f"{prefix}predictions"
    producer = make_producer(Settings(kafka_bootstrap=bootstrap), linger_ms=0,
                             enable_idempotence=False, max_batch_size=16384,
                             max_request_size=1048576)
    await producer.start()
    ctx = multiprocessing.get_context("spawn")
    results: Any = ctx.Queue()
    child = None
    try:
        if reader == "process":
            ready = ctx.Event()
            child = ctx.Process(target=_reader_process, daemon=True,
                                args=(bootstrap, topic, warmup + n, ready, results))
            child.start()
            while not ready.wait(0.05):
                await asyncio.sleep(0)
            task = asyncio.create_task(asyncio.to_thread(results.get, True, 200))
        else:
            started_reading = asyncio.Event()
            task = asyncio.create_task(_read(bootstrap, topic, warmup + n,
                                             started_reading.set))
            await started_reading.wait()
        started = time.perf_counter()
        for i, value in enumerate(values):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing to the offered rate
            sent_at.append(time.time())
            acks.append(await producer.send(f"{prefix}events", value, key=str(i).encode()))
        meta = await asyncio.gather(*acks)
        received: dict[int, tuple[float, int]] = await task
    finally:
        await producer.stop()
        if child is not None:
            child.join(10)
    measured = range(warmup, warmup + n)
    if missing := [i for i in range(warmup + n) if i not in received]:
        raise RuntimeError(f"{len(missing)} predictions not received (first: e{missing[0]})")
    lat = sorted((received[i][0] - sent_at[i]) * 1000.0 for i in measured)
    achieved = n / max(1e-9, sent_at[warmup + n - 1] - sent_at[warmup])
    out: dict[str, Any] = {
        "rate": rate, "events": n, "achieved_rate": round(achieved),
        "p50_ms": percentile(lat, 0.50), "p95_ms": percentile(lat, 0.95),
        "p99_ms": percentile(lat, 0.99), "max_ms": lat[-1],
        "p99_ms_median_second": second_p99(sent_at, received, measured)}
    if trace is not None and stop_worker is not None:
        stop_worker()
        out["phases"] = phases(json.loads(trace.read_text()), sent_at, meta, received,
                               measured)
    return out


def second_p99(sent_at: list[float], received: dict[int, tuple[float, int]],
               measured: range) -> float:
    """The median over the run's whole seconds of each second's p99 (ms): what a typical
    second looks like, when a few stalls of a shared machine decide the run's p99.

    >>> second_p99([0.0, 0.5, 1.0, 1.5], {i: (t + 0.002 * (i + 1), 0) for i, t in
    ...            enumerate([0.0, 0.5, 1.0, 1.5])}, range(4))  # seconds: [2, 4], [6, 8] ms
    6.0
    """
    by_second: dict[int, list[float]] = {}
    first = sent_at[measured[0]]
    for i in measured:
        by_second.setdefault(int(sent_at[i] - first), []).append(
            (received[i][0] - sent_at[i]) * 1000.0)
    return round(statistics.median(percentile(sorted(v), 0.99)
                                   for v in by_second.values()), 2)


def phases(trace: dict[str, Any], sent_at: list[float], meta: list[Any],
           received: dict[int, tuple[float, int]], measured: range) -> dict[str, Any]:
    """Each phase's quantiles (ms), and what the slowest 1% of events spent where."""
    at = {k: {int(o): t for o, t in trace[k].items()}
          for k in ("fetched", "processed", "send_start", "acked")}
    rows = []
    for i in measured:
        offset, appended = meta[i].offset, meta[i].timestamp / 1000.0
        if offset not in at["acked"]:
            continue
        f, p, s, a = (at[k][offset] for k in ("fetched", "processed", "send_start", "acked"))
        got = received[i][0]
        rows.append({"produce": appended - sent_at[i], "fetch": f - appended,
                     "process": p - f, "publish": s - p, "ack": a - s, "read": got - a,
                     "worker": a - appended, "total": got - sent_at[i],
                     "_span": (appended, a)})
    names = ["produce", "fetch", "process", "publish", "ack", "read", "worker", "total"]
    out: dict[str, Any] = {name: quantiles([r[name] * 1000.0 for r in rows]) for name in names}
    rows.sort(key=lambda r: r["total"])
    out["broker_to_broker"] = quantiles([
        received[i][1] - meta[i].timestamp for i in measured])  # both stamps: 1 ms steps
    tail = rows[-max(1, len(rows) // 100):]
    out["slowest_1pct_mean"] = {name: round(sum(r[name] for r in tail) * 1000.0 / len(tail), 2)
                                for name in names}
    first = min(r["_span"][0] for r in rows)
    last = max(r["_span"][1] for r in rows)
    intervals = {name: [(s, e) for s, e in spans if s < last and e > first]
                 for name, spans in trace["intervals"].items()}
    out["slowest_1pct_overlapping_over_1ms"] = {
        name: sum(any(s < b and e > a and e - s > 0.001 for s, e in spans)
                  for a, b in (r["_span"] for r in tail))
        for name, spans in intervals.items()}
    out["tail_events"] = len(tail)
    out["gc2_whole_run_ms"] = [round((e - s) * 1000.0, 1)
                               for s, e in trace["intervals"].get("gc2", [])]
    out["intervals_ms"] = {name: quantiles([(e - s) * 1000.0 for s, e in spans]) | {
        "count": len(spans)} for name, spans in intervals.items() if spans}
    return out
