"""``driftline produce``: write events to the events topic from a file or a River generator."""

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import typer
from aiokafka import AIOKafkaProducer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from schemas import constants
from schemas.exceptions import ConfigError
from schemas.settings import Settings
from streams.kafka_security import kafka_security_kwargs
from streams.sources import file_events, synthetic_events


async def send_events(settings: Settings, events: Iterable[dict[str, Any]], rate: float,
                      total: int | None, topic: str, show_progress: bool) -> int:
    """Send ``events`` keyed by ``event_id``; ``rate`` events/s (0: as fast as possible)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5,
                                max_request_size=settings.max_fetch_bytes,
                                **kafka_security_kwargs(settings))
    await producer.start()
    sent = 0
    start = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    columns = (TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not show_progress) as progress:
        bar = progress.add_task("events", total=total)
        try:
            for event in events:
                pending.append(await producer.send(
                    topic, orjson.dumps(event), key=str(event["event_id"]).encode()))
                sent += 1
                if len(pending) >= 1000:
                    await asyncio.gather(*pending)
                    pending.clear()
                    progress.update(bar, completed=sent)
                if rate > 0:
                    ahead = sent / rate - (time.monotonic() - start)
                    if ahead > 0:
                        await asyncio.sleep(ahead)  # pacing to the requested rate
            await asyncio.gather(*pending)
            progress.update(bar, completed=sent)
        finally:
            await producer.stop()
    return sent


def produce(
    synthetic: str = typer.Option(None, help="River generator with a known drift: sea, agrawal."),
    n: int = typer.Option(10_000, help="Number of synthetic events."),
    drift_at: int = typer.Option(None, help="Event index where the synthetic concept changes."),
    seed: int = typer.Option(42, help="Seed of the synthetic stream."),
    file: Path = typer.Option(None, help="CSV (with header) or JSONL file of events/rows."),
    label_column: str = typer.Option(None, help="Column holding the label (CSV/JSONL rows)."),
    id_column: str = typer.Option(None, help="Column holding the event id (default: row number)."),
    model: str = typer.Option(constants.DEFAULT_MODEL, help="Model name written in each event."),
    rate: float = typer.Option(0.0, help="Events per second; 0 sends as fast as possible."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Write events to the events topic (``DRIFTLINE_TOPIC_PREFIX`` + ``events``)."""
    settings = Settings()
    if (synthetic is None) == (file is None):
        raise ConfigError("give exactly one of --synthetic NAME or --file PATH")
    if file is not None:
        events: Iterable[dict[str, Any]] = file_events(file, label_column, model, id_column)
        total = None
    else:
        events = synthetic_events(synthetic, n, drift_at, seed, model)
        total = n
    topic = settings.topic(constants.EVENTS)
    sent = asyncio.run(send_events(settings, events, rate, total, topic, progress))
    typer.echo(f"sent {sent} events to {topic}")
