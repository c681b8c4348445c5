"""One measured run: fresh topics, pre-produced events, a consumer, its throughput."""

import asyncio
import itertools
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import measure
from bench.baselines import aiokafka_loop, confluent_loop
from bench.workload import create_topics, produce
from streams.localservices.workers import WorkerProcess, worker_env
from streams.topic_reader import count_records

_ids = itertools.count()


@dataclass
class Env:
    """Where the benchmark's services are and where it keeps its files."""

    bootstrap: str
    redis_url: str
    tmp: Path

    def prefix(self, name: str) -> str:
        """A topic prefix used by one run only."""
        return f"bench{os.getpid()}-{next(_ids)}-{name}."


@dataclass
class Result:
    """Throughput of one run (and the worker's peak RSS, when there is a worker)."""

    name: str
    events: int
    seconds: float
    rate: float
    peak_rss_mib: float | None = None


async def _prepare(env: Env, prefix: str, values: list[bytes], partitions: int) -> None:
    await create_topics(env.bootstrap, {
        f"{prefix}events": partitions, f"{prefix}predictions": partitions,
        f"{prefix}alerts": partitions, f"{prefix}deadletter": partitions},
        append_time=(f"{prefix}predictions",))
    await produce(env.bootstrap, f"{prefix}events", values)


def _result(env: Env, name: str, prefix: str, rss: float | None) -> Result:
    span = asyncio.run(measure.span(env.bootstrap, f"{prefix}predictions"))
    return Result(name, span.count, (span.last_ms - span.first_ms) / 1000.0, span.rate, rss)


def driftline(env: Env, name: str, values: list[bytes], partitions: int = 1, workers: int = 1,
              models: Path | None = None, timeout: float = 600, **settings: str) -> Result:
    """Driftline worker process(es) over ``values``; peak RSS is the largest worker's."""
    prefix = env.prefix(name)
    asyncio.run(_prepare(env, prefix, values, partitions))
    extra = dict(settings)
    if models is not None:
        extra["DRIFTLINE_MODELS"] = str(models)
    procs = [WorkerProcess(worker_env(env.bootstrap, env.redis_url, prefix, env.tmp / prefix,
                                      **extra), env.tmp / f"{prefix}{i}.log").start()
             for i in range(workers)]
    try:
        asyncio.run(measure.wait_count(env.bootstrap, f"{prefix}predictions", len(values),
                                       timeout, lambda: all(p.alive() for p in procs)))
        rss = max(measure.peak_rss_mib(p.proc.pid) for p in procs if p.proc)
    finally:
        for proc in procs:
            proc.stop()
    return _result(env, name, prefix, rss)


def plain_aiokafka(env: Env, values: list[bytes]) -> Result:
    """(b) in this process."""
    prefix = env.prefix("aiokafka")
    asyncio.run(_prepare(env, prefix, values, 1))
    asyncio.run(aiokafka_loop(env.bootstrap, f"{prefix}events", f"{prefix}predictions",
                              f"{prefix}group", len(values)))
    return _result(env, "plain aiokafka loop", prefix, None)


def plain_confluent(env: Env, values: list[bytes]) -> Result:
    """(d) in this process (needs confluent-kafka)."""
    prefix = env.prefix("confluent")
    asyncio.run(_prepare(env, prefix, values, 1))
    confluent_loop(env.bootstrap, f"{prefix}events", f"{prefix}predictions",
                   f"{prefix}group", len(values))
    return _result(env, "plain confluent-kafka loop", prefix, None)


def naive_faust(env: Env, values: list[bytes], timeout: float = 600) -> Result:
    """(c) as a subprocess."""
    prefix = env.prefix("faust")
    asyncio.run(_prepare(env, prefix, values, 1))
    datadir = env.tmp / f"{prefix}faust"
    datadir.mkdir(parents=True)
    with (env.tmp / f"{prefix}faust.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.naive_faust", env.bootstrap, f"{prefix}events",
             f"{prefix}predictions", f"{prefix}app", str(datadir)],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        asyncio.run(measure.wait_count(env.bootstrap, f"{prefix}predictions", len(values),
                                       timeout, lambda: proc.poll() is None))
        rss = measure.peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return _result(env, "naive faust agent", prefix, rss)


def recovery(env: Env, values: list[bytes], phases: Path | None = None) -> dict[str, float]:
    """kill -9 a worker (a static group member) mid-stream, start a replacement with the
    same settings; seconds from the replacement's spawn to its first new prediction.

    ``restart_to_first_prediction_s``: spawn (wall clock) to the broker's acknowledgement
    of that prediction (LogAppendTime of the predictions topic; one machine, one clock).
    ``restart_to_first_prediction_polled_s``: the same seen by polling the topic's count
    every 0.2 s (up to ~0.3 s later). Both include the new interpreter's start and
    imports. ``phases``: run the replacement under :mod:`bench.restart_phases`, which
    writes when each start-up phase began and ended to that file.
    """
    prefix = env.prefix("recovery")
    asyncio.run(_prepare(env, prefix, values, 1))
    settings = worker_env(env.bootstrap, env.redis_url, prefix, env.tmp / prefix,
                          DRIFTLINE_INSTANCE_ID=f"{prefix}worker-0")
    predictions = f"{prefix}predictions"
    first = WorkerProcess(settings, env.tmp / f"{prefix}0.log").start()
    asyncio.run(measure.wait_count(env.bootstrap, predictions, len(values) // 2, 300,
                                   first.alive))
    first.stop(9)
    before = asyncio.run(count_records(env.bootstrap, predictions))
    spawned, started = time.time(), time.monotonic()
    if phases is None:
        second = WorkerProcess(settings, env.tmp / f"{prefix}1.log").start()
    else:
        second = _Instrumented({**settings, "BENCH_T0": repr(spawned),
                                "BENCH_PHASES": str(phases)}, env.tmp / f"{prefix}1.log").start()
    try:
        asyncio.run(measure.wait_count(env.bootstrap, predictions, before + 1, 120,
                                       second.alive))
        polled = time.monotonic() - started
        acked = asyncio.run(measure.timestamp_at(env.bootstrap, predictions, before)) - spawned
        asyncio.run(measure.wait_count(env.bootstrap, predictions, len(values), 300))
        total = asyncio.run(count_records(env.bootstrap, predictions))
    finally:
        second.stop()
    return {"restart_to_first_prediction_s": acked,
            "restart_to_first_prediction_polled_s": polled, "predictions": total,
            "repeated_after_restart": total - len(values)}


class _Instrumented(WorkerProcess):
    """``driftline worker`` run by :mod:`bench.restart_phases` (phase timestamps)."""

    def start(self) -> "WorkerProcess":
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.restart_phases",
                                          "--worker"], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=Path(__file__).resolve().parents[1])
        return self
