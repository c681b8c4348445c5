"""``driftline demo``: the whole product in one command, on local real services.

Starts Kafka and Redis (unless pointed elsewhere), a worker, sends a drifting
SEA stream with a few malformed messages, and reports what came out.
"""

import asyncio
import time
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

import orjson
import typer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas import constants
from schemas.outputs import DeadLetter, DriftAlert, Prediction
from schemas.settings import Settings
from streams.commands.produce import send_events
from streams.kafka_security import kafka_security_kwargs
from streams.localservices import stack
from streams.localservices.paths import run_dir
from streams.localservices.workers import WorkerProcess, worker_env
from streams.sources import synthetic_events
from streams.topic_reader import read_topic

_MALFORMED = [b"not json", b"[1, 2]", b'{"event_id": "x"}',
              b'{"event_id": "n", "model": "default", "features": {"x0": NaN}}',
              b'{"event_id": "u", "model": "nope", "features": {"x0": 1}}']


def _without_password(url: str) -> str:
    """``url`` with any password replaced by ``***``.

    >>> _without_password("redis://:s3cret@host:6379/0")
    'redis://:***@host:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def _create_events_topic(settings: Settings, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                **kafka_security_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def demo(
    n: int = typer.Option(20_000, help="Events in the synthetic stream."),
    drift_at: int = typer.Option(10_000, help="Where the concept changes."),
    partitions: int = typer.Option(3, help="Partitions of the demo's events topic."),
) -> None:
    """Run a worker on a drifting stream and show predictions, alerts and dead letters."""
    addresses = stack.up()
    redis_shown = _without_password(addresses.redis_url)
    typer.echo(f"kafka {addresses.kafka_bootstrap}   redis {redis_shown}")
    prefix = f"demo{int(time.time())}."
    folder = run_dir() / prefix.rstrip(".")
    folder.mkdir(parents=True, exist_ok=True)
    env = worker_env(addresses.kafka_bootstrap, addresses.redis_url, prefix, folder)
    settings = Settings(kafka_bootstrap=addresses.kafka_bootstrap, topic_prefix=prefix)
    asyncio.run(_create_events_topic(settings,
                                     settings.topic(constants.EVENTS), partitions))
    worker = WorkerProcess(env, folder / "worker.log").start()
    typer.echo(f"worker started (log: {worker.log_path})")
    try:
        _run(settings, worker, n, drift_at)
    finally:
        worker.stop()
    typer.echo("services keep running: `driftline services down` stops them")


def _run(settings: Settings, worker: WorkerProcess, n: int, drift_at: int) -> None:
    bootstrap = settings.kafka_bootstrap
    events = list(synthetic_events("sea", n, drift_at, seed=42, model=constants.DEFAULT_MODEL))
    labels = {e["event_id"]: e["label"] for e in events}
    started = time.monotonic()
    asyncio.run(send_events(settings, events, 0.0, n, settings.topic(constants.EVENTS), True))
    asyncio.run(_send_raw(settings, settings.topic(constants.EVENTS)))
    security = kafka_security_kwargs(settings)
    predictions = asyncio.run(read_topic(bootstrap, settings.topic(constants.PREDICTIONS), n, 300,
                                         **security))
    elapsed = time.monotonic() - started
    dead = asyncio.run(read_topic(bootstrap, settings.topic(constants.DEADLETTER),
                                  len(_MALFORMED), 60, **security))
    alerts = asyncio.run(read_topic(bootstrap, settings.topic(constants.ALERTS), 0, 5, **security))
    if not worker.alive():
        raise typer.Exit(f"the worker stopped; see {worker.log_path}")
    windows = {"before the drift": Counter(), "2,000 after the drift": Counter()}
    for record in predictions:
        p = Prediction.model_validate_json(record.value)
        index = int(p.event_id.rsplit("-", 1)[1])
        window = ("before the drift" if index < drift_at else
                  "2,000 after the drift" if index < drift_at + 2000 else None)
        if window:
            windows[window][p.prediction == labels[p.event_id]] += 1
    typer.echo(f"\n{len(predictions)} predictions for {n} events in {elapsed:.1f}s "
               f"(produce + score + publish)")
    for name, counts in windows.items():
        typer.echo(f"  accuracy {name}: {counts[True] / max(1, counts.total()):.3f}")
    for record in alerts:
        a = DriftAlert.model_validate_json(record.value)
        typer.echo(f"drift alert: model {a.model} partition {a.partition} at {a.event_id} "
                   f"(error {a.mean_before:.3f} -> {a.mean_after:.3f})")
    for record in dead:
        d = DeadLetter.model_validate_json(record.value)
        typer.echo(f"dead letter: {d.error.type}: {d.error.message[:70]} "
                   f"payload={orjson.dumps(d.payload)[:40].decode()}")


async def _send_raw(settings: Settings, topic: str) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                **kafka_security_kwargs(settings))
    await producer.start()
    try:
        for i, payload in enumerate(_MALFORMED):
            await producer.send_and_wait(topic, payload, key=f"bad-{i}".encode())
    finally:
        await producer.stop()
