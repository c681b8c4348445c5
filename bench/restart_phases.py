"""``python -m bench.restart_phases``: only the kill -9 recovery step, with where the time goes.

Starts local Kafka and Redis, runs :func:`bench.runs.recovery` ``--runs`` times (the numbers
``./dev bench`` reports: a fresh replacement process, and a supervised worker whose child
is killed), then once more with the workers run by this module (``--worker``), which
wraps the start-up steps of ``driftline worker`` and writes, in seconds since the
replacement was spawned (fresh) or the child killed (supervised), when each began (``>``)
and ended (``<``): imports, settings and models, the access check, the Faust app, topic
checks, producer and consumer starts, the group join, restore, the first fetch with
records, the first batch processed and acknowledged. Measurement only: nothing of it runs
in a real worker.
"""

import argparse
import contextlib
import functools
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_WRAPPED_LOGGERS = {"aiokafka.consumer.group_coordinator": logging.INFO,
                    "streams.rebalance": logging.INFO, "streams.supervisor": logging.INFO}


def _marker(path: str) -> Any:
    """Append ``epoch seconds, pid, what`` lines to ``path`` (made relative to the kill or
    the spawn by :func:`bench.runs._relative`)."""
    out = open(path, "a")  # noqa: SIM115 (kept open for the process's life)

    def mark(what: str) -> None:
        out.write(f"{time.time():.6f} {os.getpid()} {what}\n")
        out.flush()
    return mark


def _instrumented_worker() -> None:
    """``driftline worker`` with each start-up step timed (see the module's docstring)."""
    mark = _marker(os.environ["BENCH_PHASES"])
    mark("interpreter started")
    import aiokafka

    import streams.cli
    from streams import app, checkpointer, rebalance, scoring
    from streams.commands import worker
    mark("imports done")

    def timed(owner: Any, name: str, label: str, once: bool = False) -> None:
        original = getattr(owner, name)
        seen = []

        @functools.wraps(original)
        async def run(*args: Any, **kwargs: Any) -> Any:
            if once and seen:
                return await original(*args, **kwargs)
            seen.append(True)
            mark(f"{label} >")
            try:
                return await original(*args, **kwargs)
            finally:
                mark(f"{label} <")
        setattr(owner, name, run)

    for owner, name, label in (
            (worker, "check_access", "access check (Kafka, Redis)"),
            (app.DriftlineApp, "on_start", "Faust app on_start (topic check, scoring start)"),
            (app.DriftlineApp, "on_started", "Faust's services started (then its tables)"),
            (scoring.ScoringService, "on_start", "scoring service start"),
            (rebalance.Rebalancer, "on_partitions_assigned", "assignment callback"),
            (rebalance.Rebalancer, "_restore", "restore task (until resumed)"),
            (checkpointer.Checkpointer, "restore", "restore: checkpoints from Redis")):
        timed(owner, name, label)
    timed(rebalance, "read_position", "restore: committed offset, log bounds", once=True)
    timed(scoring.ScoringLoop, "handle", "first batch processed and acknowledged", once=True)
    for cls, what in ((aiokafka.AIOKafkaProducer, "producer"),
                      (aiokafka.AIOKafkaConsumer, "consumer")):
        original_start = cls.start

        async def start(self: Any, _original: Any = original_start, _what: str = what) -> None:
            client = getattr(self, "client", None) or self._client
            mark(f"{_what} start ({client._client_id}) >")
            await _original(self)
            mark(f"{_what} start ({client._client_id}) <")
        cls.start = start
    getmany = aiokafka.AIOKafkaConsumer.getmany
    fetched = []

    async def first_records(self: Any, *args: Any, **kwargs: Any) -> Any:
        batch = await getmany(self, *args, **kwargs)
        if not fetched and any(batch.values()):
            fetched.append(True)
            mark(f"first fetch with records ({sum(map(len, batch.values()))})")
        return batch
    aiokafka.AIOKafkaConsumer.getmany = first_records
    for name, label in ((worker, "load_registry"), (worker, "create_app")):
        original = getattr(name, label)

        def synced(*args: Any, _original: Any = original, _label: str = label) -> Any:
            mark(f"{_label} >")
            try:
                return _original(*args)
            finally:
                mark(f"{_label} <")
        setattr(name, label, synced)

    class Logged(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            mark(f"log {record.name}: {record.getMessage()[:120]}")
    configure = worker.logs.configure

    def configured(*args: Any) -> None:
        configure(*args)
        for name, level in _WRAPPED_LOGGERS.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            if not any(isinstance(h, Logged) for h in logger.handlers):  # again in a child
                logger.addHandler(Logged())
    worker.logs.configure = configured
    sys.argv = ["driftline", "worker"]
    streams.cli.main()


def main() -> None:
    """Run the recovery step (and one timed run); print the numbers and the phases."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("fresh", "supervised"),
                        help="measure only one kind of restart (and no timed run)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--kafka", help="bootstrap of a running broker (default: start one)")
    parser.add_argument("--redis", help="URL of a running Redis (with --kafka)")
    args = parser.parse_args()
    if args.worker:
        _instrumented_worker()
        return
    from bench import runs
    from bench.workload import make_events
    from streams.localservices.kafka import KafkaBroker
    from streams.localservices.redis import RedisServer

    tmp = Path(tempfile.mkdtemp(prefix="driftline-restart-"))
    with contextlib.ExitStack() as stack:
        if args.kafka and args.redis:
            bootstrap, redis_url = args.kafka, args.redis
        else:
            broker = KafkaBroker.create(tmp / "kafka")
            broker.start(die_with_parent=True)
            stack.callback(broker.stop)
            redis = RedisServer.create(tmp / "redis", appendonly=True)
            redis.start(die_with_parent=True)
            stack.callback(redis.stop)
            bootstrap, redis_url = broker.bootstrap, redis.url
        env = runs.Env(bootstrap, redis_url, tmp)
        values = make_events(args.events)
        for i in range(args.runs):
            if args.only:
                one = runs.fresh_restart if args.only == "fresh" else runs.supervised_restart
                print(f"run {i + 1} ({args.only}): {one(env, values)}", flush=True)
            else:
                print(f"run {i + 1}: {runs.recovery(env, values)}", flush=True)
        if args.only:
            return
        phases = tmp / "phases.txt"
        print(f"timed run: {runs.recovery(env, values, phases=phases)}")
        for kind in ("fresh", "supervised"):
            print(f"{kind}:\n{phases.with_suffix('.' + kind).read_text()}")


if __name__ == "__main__":
    main()
