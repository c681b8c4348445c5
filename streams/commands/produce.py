"""``driftline produce``: write events to the events topic from a file or a River generator,
and late labels to the feedback topic (a JSONL file, or labels withheld and sent later)."""

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from schemas import constants
from schemas.exceptions import ConfigError
from schemas.settings import Settings
from streams.commands.access import check_kafka
from streams.config import load_models
from streams.kafka_clients import ensure_topics, make_producer
from streams.sources import (
    feedback_file,
    file_events,
    parse_delay,
    synthetic_events,
    withhold_labels,
)


async def send_events(settings: Settings, events: Iterable[dict[str, Any]], rate: float,
                      total: int | None, topic: str, show_progress: bool) -> int:
    """Send ``events`` keyed by ``event_id``; ``rate`` events/s (0: as fast as possible)."""
    return await send_messages(settings, ((topic, event) for event in events), rate, total,
                               show_progress)


def _key(message: dict[str, Any]) -> bytes | None:
    event_id = message.get("event_id")
    return None if event_id is None else str(event_id).encode()


async def send_messages(settings: Settings, messages: Iterable[tuple[str, dict[str, Any]]],
                        rate: float, total: int | None, show_progress: bool) -> int:
    """Send (topic, message) pairs in order, keyed by ``event_id`` (so feedback lands on
    its event's partition); ``rate`` messages/s (0: as fast as possible)."""
    producer = make_producer(settings, client_id=f"{settings.app_id}-produce", linger_ms=5)
    sent = 0
    start = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    columns = (TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not show_progress) as progress:
        bar = progress.add_task("messages", total=total)
        try:
            await producer.start()
            for topic, message in messages:
                pending.append(await producer.send(topic, orjson.dumps(message),
                                                   key=_key(message)))
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
    id_column: str = typer.Option(None, help="Column holding the event id (default: "
                                             "<file stem>-<row index from 0>)."),
    model: str = typer.Option(constants.DEFAULT_MODEL, help="Model name written in each event."),
    feedback: Path = typer.Option(None, help="JSONL file of feedback messages (late labels) "
                                             "to send to the feedback topic."),
    label_delay: str = typer.Option(None, metavar="MIN:MAX",
                                    help="Withhold the events' labels and send each on the "
                                         "feedback topic MIN to MAX events later (seeded)."),
    rate: float = typer.Option(0.0, help="Messages per second; 0 sends as fast as possible."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Write events to the events topic (``DRIFTLINE_TOPIC_PREFIX`` + ``events``) and late
    labels to the feedback topic (``... + feedback``)."""
    settings = Settings()
    if sum(source is not None for source in (synthetic, file, feedback)) != 1:
        raise ConfigError("give exactly one of --synthetic NAME, --file PATH or --feedback PATH")
    if feedback is not None and label_delay is not None:
        raise ConfigError("--label-delay withholds the labels of events: use it with "
                          "--synthetic or --file, not --feedback")

    if feedback is None:
        _warn_unknown_model(settings, model)

    def source() -> tuple[Iterable[tuple[str, dict[str, Any]]], int | None]:
        """The (topic suffix, message) pairs to send, and how many if known."""
        if feedback is not None:
            return ((constants.FEEDBACK, message) for message in feedback_file(feedback)), None
        if file is not None:
            events: Iterable[dict[str, Any]] = file_events(file, label_column, model, id_column)
            total = None
        else:
            events, total = synthetic_events(synthetic, n, drift_at, seed, model), n
        if label_delay is not None:
            low, high = parse_delay(label_delay)
            return withhold_labels(events, low, high, seed), None
        return ((constants.EVENTS, event) for event in events), total

    messages, total = source()
    try:
        if file is not None or feedback is not None:
            # A first pass over the whole file, before connecting: a bad line anywhere
            # refuses it with nothing sent (not a prefix of it).
            total = 0
            for suffix, message in messages:
                total += 1
                size = len(orjson.dumps(message))
                limit = (constants.MAX_FEEDBACK_BYTES if suffix == constants.FEEDBACK
                         else constants.MAX_EVENT_BYTES)
                if size > limit:  # the worker would only dead-letter it as too_large
                    raise ConfigError(f"{file or feedback}: message {total} is {size} bytes; "
                                      f"a message takes at most {limit}")
            messages, _ = source()
            empty = total == 0
        else:  # the first message checks the arguments
            first = next(iter(messages), None)
            empty = first is None
            messages = itertools.chain([] if empty else [first], messages)
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
    counts: Counter[str] = Counter()

    def counted() -> Iterator[tuple[str, dict[str, Any]]]:
        for suffix, message in messages:
            counts[suffix] += 1
            yield settings.topic(suffix), message

    if not empty:
        asyncio.run(_produce(settings, counted(), rate, total, progress))
    typer.echo(", ".join(f"sent {counts[suffix]} message{'' if counts[suffix] == 1 else 's'} "
                         f"to {settings.topic(suffix)}"
                         for suffix in (constants.EVENTS, constants.FEEDBACK) if counts[suffix])
               or "sent nothing")


def _warn_unknown_model(settings: Settings, model: str) -> None:
    """One line on stderr when the worker's models file (``DRIFTLINE_MODELS``, else the
    built-in ``default``) has no model ``model``: the worker would dead-letter every event
    as ``unknown_model``. Silent when the models file cannot be read or parsed here (the
    worker may run elsewhere)."""
    try:
        known = load_models(settings.models).models
    except ConfigError:
        return
    if model not in known:
        where = settings.models or "the built-in models file"
        typer.echo(f"driftline: warning: model '{model}' is not in {where} "
                   f"(models: {', '.join(known)}): the worker makes its events "
                   "unknown_model dead letters", err=True)


async def _produce(settings: Settings, messages: Iterable[tuple[str, dict[str, Any]]],
                   rate: float, total: int | None, show_progress: bool) -> int:
    """Check Kafka answers, create the worker's topics that do not exist yet (so the broker
    does not auto-create them with its default partition count), then send."""
    await check_kafka(settings)
    await ensure_topics(settings)
    return await send_messages(settings, messages, rate, total, show_progress)
