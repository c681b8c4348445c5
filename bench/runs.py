"""One measured run: fresh topics, pre-produced events, a consumer, its throughput."""

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition

from bench import measure
from bench.baselines import aiokafka_loop, confluent_loop
from bench.workload import create_topics, produce
from schemas.settings import Settings
from streams.kafka_clients import make_reader
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


def recovery(env: Env, values: list[bytes], phases: Path | None = None) -> dict[str, Any]:
    """kill -9 of a worker mid-stream, twice: a fresh replacement process
    (:func:`fresh_restart`, its numbers at the top level) and a supervised worker whose
    child is killed (:func:`supervised_restart`, under ``"supervised"``).

    ``phases``: run each replacement under :mod:`bench.restart_phases`, which writes when
    each start-up phase began and ended to ``phases`` (``.fresh``/``.supervised``
    suffixes).
    """
    fresh = fresh_restart(env, values, None if phases is None else
                          phases.with_suffix(".fresh"))
    supervised = supervised_restart(env, values, None if phases is None else
                                    phases.with_suffix(".supervised"))
    return {**fresh, "supervised": supervised}


def _recovery_topics(env: Env, values: list[bytes], name: str,
                     **extra: str) -> tuple[str, dict[str, str]]:
    """Fresh topics holding ``values``; the prefix and the worker's settings (a static
    group member)."""
    prefix = env.prefix(name)
    asyncio.run(_prepare(env, prefix, values, 1))
    return prefix, worker_env(env.bootstrap, env.redis_url, prefix, env.tmp / prefix,
                              DRIFTLINE_INSTANCE_ID=f"{prefix}worker-0", **extra)


def fresh_restart(env: Env, values: list[bytes], phases: Path | None = None
                  ) -> dict[str, float]:
    """kill -9 a worker (a static group member) mid-stream, start a replacement with the
    same settings; seconds from the replacement's spawn to its first new prediction.

    ``restart_to_first_prediction_s``: spawn (wall clock) to the broker's acknowledgement
    of that prediction (LogAppendTime of the predictions topic; one machine, one clock).
    ``restart_to_first_prediction_polled_s``: the same seen by polling the topic's count
    every 0.2 s (up to ~0.3 s later). Both include the new interpreter's start and
    imports. ``phases``: run the replacement under :mod:`bench.restart_phases`.
    """
    prefix, settings = _recovery_topics(env, values, "recovery")
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
        second = _Instrumented({**settings, "BENCH_PHASES": str(phases)},
                               env.tmp / f"{prefix}1.log").start()
    try:
        asyncio.run(measure.wait_count(env.bootstrap, predictions, before + 1, 120,
                                       second.alive))
        polled = time.monotonic() - started
        acked = asyncio.run(measure.timestamp_at(env.bootstrap, predictions, before)) - spawned
        total = _all_predicted(env, predictions, len(values))
    finally:
        second.stop()
    if phases is not None:
        _relative(phases, spawned)
    return {"restart_to_first_prediction_s": acked,
            "restart_to_first_prediction_polled_s": polled, "predictions": total,
            "repeated_after_restart": total - len(values)}


def supervised_restart(env: Env, values: list[bytes], phases: Path | None = None
                       ) -> dict[str, float]:
    """``driftline worker --supervise`` (a static group member): kill -9 of its worker
    child mid-stream; seconds from the kill to the first new prediction of the child the
    parent forks in its place.

    ``kill_to_first_prediction_s``: the kill (wall clock, just before ``kill()``) to the
    broker's acknowledgement (LogAppendTime) of the first prediction the new child scored
    (the first one after the kill's offset whose ``scored_at`` is not before the kill: the
    killed child scored nothing later). ``kill_to_first_prediction_polled_s``: the same
    seen by polling. ``restart_ms``: the parent's own log of the fork (the death reaped
    to the new child forked). ``phases``: the worker run under :mod:`bench.restart_phases`.
    """
    prefix, settings = _recovery_topics(env, values, "supervised",
                                        DRIFTLINE_SUPERVISE="true")
    predictions = f"{prefix}predictions"
    log = env.tmp / f"{prefix}0.log"
    parent = (WorkerProcess(settings, log) if phases is None else
              _Instrumented({**settings, "BENCH_PHASES": str(phases)}, log)).start()
    try:
        asyncio.run(measure.wait_count(env.bootstrap, predictions, len(values) // 2, 300,
                                       parent.alive))
        (child,) = parent.children()
        scanned_from = asyncio.run(count_records(env.bootstrap, predictions))
        killed, started = time.time(), time.monotonic()
        os.kill(child, signal.SIGKILL)
        acked = asyncio.run(_first_scored_after(env.bootstrap, predictions, scanned_from,
                                                killed, 120, parent.alive))
        polled = time.monotonic() - started
        total = _all_predicted(env, predictions, len(values))
        restarted = [line for line in parent.log().splitlines()
                     if f"worker {child} killed by SIGKILL; restarted as" in line]
    finally:
        parent.stop()
    if phases is not None:
        _relative(phases, killed)
    return {"kill_to_first_prediction_s": acked - killed,
            "kill_to_first_prediction_polled_s": polled, "predictions": total,
            "repeated_after_restart": total - len(values),
            "restart_ms": float(restarted[0].rsplit(" in ", 1)[1].split()[0])}


def _all_predicted(env: Env, topic: str, events: int) -> int:
    """How many predictions ``topic`` holds once every one of ``events`` has one."""
    asyncio.run(measure.wait_count(env.bootstrap, topic, events, 300))
    return asyncio.run(count_records(env.bootstrap, topic))


async def _first_scored_after(bootstrap: str, topic: str, offset: int, since: float,
                              timeout: float, alive: Callable[[], bool]) -> float:
    """The broker timestamp (s) of the first record of ``topic`` (partition 0) from
    ``offset`` on whose prediction was scored at ``since`` (epoch s) or later; polled
    until ``timeout``, RuntimeError as soon as ``alive()`` is false."""
    consumer = make_reader(Settings(kafka_bootstrap=bootstrap))
    await consumer.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        while True:
            for record in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                scored = datetime.fromisoformat(orjson.loads(record.value)["scored_at"])
                if scored.timestamp() >= since:
                    return record.timestamp / 1000.0
            if not alive():
                raise RuntimeError(f"{topic}: the supervised worker stopped")
            if loop.time() > deadline:
                raise TimeoutError(f"{topic}: no prediction scored after the kill in "
                                   f"{timeout}s")
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


def _relative(phases: Path, t0: float) -> None:
    """Rewrite the phase lines (epoch seconds, pid, what) from ``t0`` on, in seconds
    since ``t0``; earlier lines (the supervised parent's imports, the killed child) go."""
    lines = []
    for line in phases.read_text().splitlines():
        at, pid, what = line.split(" ", 2)
        if float(at) >= t0:
            lines.append(f"{float(at) - t0:8.3f} [{pid}] {what}")
    phases.write_text("\n".join(lines) + "\n")


class _Instrumented(WorkerProcess):
    """``driftline worker`` run by :mod:`bench.restart_phases` (phase timestamps)."""

    def start(self) -> "WorkerProcess":
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.restart_phases",
                                          "--worker"], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=Path(__file__).resolve().parents[1])
        return self
