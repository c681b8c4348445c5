"""Kafka, Redis and one worker for the demo, always stopped again (unless asked to keep them).

Three ways to get Kafka and Redis: started here for this run only (they die with the
demo's process even on ``kill -9``), started as ``driftline services up`` does (they
outlive the demo: ``--keep-services``), or already running (``--no-services``: the
addresses in ``DRIFTLINE_KAFKA_BOOTSTRAP`` / ``DRIFTLINE_REDIS_URL``, else those of
``driftline services up``). An address given in the environment is never started.

>>> without_password("redis://:s3cret@host:6379/0")
'redis://:***@host:6379/0'
"""

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from schemas.settings import Settings
from streams.exceptions import ServiceError
from streams.kafka_clients import ensure_topics
from streams.localservices import stack
from streams.localservices.kafka import KafkaBroker, ensure_jars
from streams.localservices.process import ManagedProcess
from streams.localservices.redis import RedisServer
from streams.localservices.workers import DRIFTLINE, worker_env

Mode = Literal["own", "keep", "running"]
Say = Callable[[str], None]


def without_password(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _timed(say: Say, what: str, start: float) -> None:
    say(f"{what} ({time.monotonic() - start:.1f} s)")


@contextmanager
def kafka_and_redis(mode: Mode, folder: Path, say: Say) -> Iterator[stack.Addresses]:
    """Addresses of a Kafka broker and a Redis server, per ``mode``; what this started
    is stopped on exit (``keep`` excepted), however the block ends."""
    kafka = os.environ.get(stack.KAFKA_ENV)
    redis_url = os.environ.get(stack.REDIS_ENV)
    if mode == "running":
        found = {name: str(e["address"]) for name, e in stack.status().items() if e["running"]}
        kafka, redis_url = kafka or found.get("kafka"), redis_url or found.get("redis")
        if not kafka or not redis_url:
            raise ServiceError("--no-services: no running Kafka/Redis found; start them with "
                               "`driftline services up` or set DRIFTLINE_KAFKA_BOOTSTRAP and "
                               "DRIFTLINE_REDIS_URL")
        yield stack.Addresses(kafka, redis_url)
        return
    if mode == "keep":
        start = time.monotonic()
        addresses = stack.up()
        _timed(say, "kafka and redis running; `driftline services down` stops them", start)
        yield addresses
        return
    started: list[KafkaBroker | RedisServer] = []
    try:
        if not kafka:
            start = time.monotonic()
            ensure_jars()
            if time.monotonic() - start > 2:
                _timed(say, "fetched Kafka's jars (first run only)", start)
            start = time.monotonic()
            broker = KafkaBroker.create(folder / "kafka")
            started.append(broker)
            broker.start(die_with_parent=True)
            kafka = broker.bootstrap
            _timed(say, f"kafka started on {kafka}", start)
        if not redis_url:
            start = time.monotonic()
            server = RedisServer.create(folder / "redis")
            started.append(server)
            server.start(die_with_parent=True)
            redis_url = server.url
            _timed(say, f"redis-server started on {redis_url}", start)
        yield stack.Addresses(kafka, redis_url)
    finally:
        start = time.monotonic()
        for service in reversed(started):
            service.stop()
        if started:
            _timed(say, "kafka and redis-server stopped" if len(started) == 2 else
                   f"{'kafka' if isinstance(started[0], KafkaBroker) else 'redis-server'} "
                   "stopped", start)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Worker:
    """The demo's worker process and where to find it."""

    process: ManagedProcess
    log_path: Path
    web_port: int

    def tail(self, lines: int = 15) -> str:
        """The last lines of the worker's log."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def worker(settings: Settings, redis_url: str, models_file: Path, folder: Path,
           say: Say) -> Iterator[Worker]:
    """Create the topics (``settings.topic_partitions`` partitions each), start a worker
    on them, stop it (SIGTERM, then SIGKILL) however the block ends."""
    asyncio.run(ensure_topics(settings))
    folder.mkdir(parents=True, exist_ok=True)
    env = worker_env(settings.kafka_bootstrap, redis_url, settings.topic_prefix, folder,
                     DRIFTLINE_MODELS=str(models_file),
                     DRIFTLINE_TOPIC_PARTITIONS=str(settings.topic_partitions),
                     DRIFTLINE_LOG_LEVEL="warning")
    log_path = folder / "worker.log"
    process = ManagedProcess.spawn([DRIFTLINE, "worker"], log_path=log_path,
                                   die_with_parent=True, env=env)
    say(f"worker started (pid {process.pid}, log {log_path})")
    try:
        yield Worker(process, log_path, int(env["DRIFTLINE_WEB_PORT"]))
    finally:
        start = time.monotonic()
        process.stop(timeout=30.0)
        _timed(say, "worker stopped", start)
