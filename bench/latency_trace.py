"""``python -m bench.latency_trace``: ``driftline worker`` with phase timestamps (bench only).

Wraps, in this process only, the calls the scoring loop makes — the consumer's
``getmany``, :meth:`EventProcessor.process_batch`, :meth:`OutputSender.send`, the
committer's offset commits and ``checkpoint_due`` — and Python's garbage collector, and records
wall-clock times (``time.time()``, seconds) per event offset of the events topic and per
interval. At exit the trace is written as JSON to ``$BENCH_LATENCY_TRACE``:
``fetched`` / ``processed`` / ``send_start`` / ``acked``: offset -> time;
``intervals``: name -> [[start, end], ...] (``gc2`` = generation-2 collections).
No code of Driftline is changed; the wrappers add a few microseconds per call.
"""

import asyncio
import atexit
import gc
import json
import os
import time
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer

from streams import commits, output, processor

TRACE: dict[str, Any] = {"fetched": {}, "processed": {}, "send_start": {}, "acked": {},
                         "intervals": defaultdict(list)}
_last_offsets: list[int] = []
_gc_start: dict[int, float] = {}
_FREEZE = os.environ.get("BENCH_GC_FREEZE") == "1"
_started: list[Any] = []


async def _watch_loop(tick: float = 0.001, late: float = 0.002) -> None:
    """Record every interval the event loop answered a ``tick`` s sleep more than
    ``late`` s late: as ``loop_busy`` when this thread ran for most of it (its own work:
    scoring, a snapshot, GC), else as ``loop_starved`` (waiting for a CPU the other
    processes of the machine held, or in a blocking call)."""
    while True:
        before, cpu = time.time(), time.thread_time()
        await asyncio.sleep(tick)
        after, used = time.time(), time.thread_time() - cpu
        if after - before - tick > late:
            kind = "loop_busy" if used > 0.5 * (after - before) else "loop_starved"
            TRACE["intervals"][kind].append([before + tick, after])


def _events(topic: str) -> bool:
    return topic.endswith("events")


def _wrap_getmany() -> None:
    original = AIOKafkaConsumer.getmany

    async def getmany(self: AIOKafkaConsumer, *a: Any, **kw: Any) -> Any:
        batch = await original(self, *a, **kw)
        now = time.time()
        if batch and not _started:  # serving: watch the event loop from now on
            _started.append(asyncio.get_running_loop().create_task(_watch_loop()))
            if _FREEZE:  # experiment: freeze what start-up made
                gc.collect()
                gc.freeze()
        fetched = TRACE["fetched"]
        for tp, messages in batch.items():
            if _events(tp.topic):
                for m in messages:
                    fetched[m.offset] = now
        return batch

    AIOKafkaConsumer.getmany = getmany  # type: ignore[method-assign]


def _wrap_process() -> None:
    original = processor.EventProcessor.process_batch

    def process_batch(self: Any, records: Any, *a: Any, **kw: Any) -> Any:
        result = original(self, records, *a, **kw)
        now = time.time()
        done = [r.offset for r in records[:result.processed] if _events(r.topic)]
        for offset in done:
            TRACE["processed"][offset] = now
        _last_offsets[:] = done  # the outputs the next send carries
        return result

    processor.EventProcessor.process_batch = process_batch  # type: ignore[method-assign]


def _wrap_send() -> None:
    original = output.OutputSender.send

    async def send(self: Any, outputs: Any) -> None:
        offsets, started = list(_last_offsets), time.time()
        for offset in offsets:
            TRACE["send_start"][offset] = started
        await original(self, outputs)
        now = time.time()
        for offset in offsets:
            TRACE["acked"][offset] = now
        TRACE["intervals"]["send"].append([started, now])

    output.OutputSender.send = send  # type: ignore[method-assign]


def _interval(cls: Any, name: str, is_async: bool, key: str | None = None) -> None:
    original = getattr(cls, name)
    key = key or name
    if is_async:
        async def timed_async(self: Any, *a: Any, **kw: Any) -> Any:
            started = time.time()
            try:
                return await original(self, *a, **kw)
            finally:
                TRACE["intervals"][key].append([started, time.time()])
        setattr(cls, name, timed_async)
    else:
        def timed(self: Any, *a: Any, **kw: Any) -> Any:
            started = time.time()
            try:
                return original(self, *a, **kw)
            finally:
                TRACE["intervals"][key].append([started, time.time()])
        setattr(cls, name, timed)


def _gc(phase: str, info: dict[str, int]) -> None:
    gen = info["generation"]
    if phase == "start":
        _gc_start[gen] = time.time()
    elif gen in _gc_start:
        TRACE["intervals"][f"gc{gen}"].append([_gc_start.pop(gen), time.time()])


def _dump() -> None:
    path = os.environ.get("BENCH_LATENCY_TRACE")
    if path:
        with open(path, "w") as f:
            json.dump(TRACE, f)


def _experiment_linger() -> None:
    linger = os.environ.get("BENCH_LINGER_MS")
    if linger is None:
        return
    from streams import kafka_clients

    original = kafka_clients.producer_options

    def producer_options(settings: Any, **overrides: Any) -> dict[str, Any]:
        return original(settings, **{"linger_ms": int(linger), **overrides})

    kafka_clients.producer_options = producer_options


def install() -> None:
    """Wrap the calls and start recording (call before the worker starts)."""
    _experiment_linger()
    _wrap_getmany()
    _wrap_process()
    _wrap_send()
    _interval(commits.Committer, "_send", True, "commit")  # every commit, awaited or not
    _interval(commits.Committer, "checkpoint_due", False)
    gc.callbacks.append(_gc)
    atexit.register(_dump)


if __name__ == "__main__":
    install()
    from streams.commands.worker import worker

    try:
        worker()
    finally:
        _dump()
