"""``driftline read``: print one of Driftline's topics as JSON lines, from its start."""

import asyncio
import sys

import typer

from schemas import constants
from schemas.exceptions import ConfigError
from schemas.settings import Settings
from streams.commands.access import check_kafka
from streams.kafka_security import kafka_security_kwargs
from streams.topic_reader import follow

TOPICS = (constants.PREDICTIONS, constants.ALERTS, constants.DEADLETTER, constants.INCIDENTS,
          constants.EVENTS, constants.FEEDBACK)


def read(
    topic: str = typer.Argument(..., help=f"One of: {', '.join(TOPICS)} (the prefix "
                                          "DRIFTLINE_TOPIC_PREFIX is added)."),
    n: int = typer.Option(0, "--n", min=0, help="Stop after N records (0: no limit)."),
    idle: float = typer.Option(5.0, min=0.1, help="Stop once nothing new came for this many "
                                                  "seconds (0.1 or more)."),
) -> None:
    """Print the records of a topic, one JSON value per line (a tombstone as null)."""
    if topic not in TOPICS:
        raise ConfigError(f"unknown topic '{topic}'; choose from {', '.join(TOPICS)}")
    settings = Settings()
    asyncio.run(_read(settings, settings.topic(topic), n, idle))


async def _read(settings: Settings, topic: str, n: int, idle: float) -> None:
    await check_kafka(settings)
    loop = asyncio.get_running_loop()
    printed, last = 0, loop.time()
    batches = follow(settings.kafka_bootstrap, [topic], timeout=30.0,
                     **kafka_security_kwargs(settings))
    try:
        async for batch in batches:
            for record in batch:
                value = record.value
                sys.stdout.write((value.decode("utf-8", "replace") if value is not None
                                  else "null") + "\n")
                printed += 1
                if n and printed >= n:
                    return
            now = loop.time()
            if batch:
                last = now
            elif now - last >= idle:
                return
    finally:
        sys.stdout.flush()
        await batches.aclose()
