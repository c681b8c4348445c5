"""`driftline produce` creates the worker's topics itself, with DRIFTLINE_TOPIC_PARTITIONS.

The test broker (like `services up`'s) auto-creates a topic a producer writes to with
num.partitions=1; a `produce` racing a just-started worker used to get that single partition.
"""

import asyncio
import logging
import os

from schemas import constants
from schemas.settings import Settings
from streams.kafka_clients import create_topics, ensure_topics, partition_counts
from tests.helpers import run_cli


def test_produce_creates_its_topics_with_the_configured_partitions(kafka, topic_prefix,
                                                                   tmp_path, caplog):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update(DRIFTLINE_KAFKA_BOOTSTRAP=kafka.bootstrap, DRIFTLINE_TOPIC_PREFIX=topic_prefix,
               DRIFTLINE_TOPIC_PARTITIONS="3", DRIFTLINE_DATA_DIR=str(tmp_path / "data"))
    result = run_cli("produce", "--synthetic", "sea", "--n", "20", "--label-delay", "1:2",
                     "--no-progress", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"sent 20 messages to {topic_prefix}events" in result.stdout
    settings = Settings(kafka_bootstrap=kafka.bootstrap, topic_prefix=topic_prefix,
                        topic_partitions=3)
    topics = [settings.topic(suffix)
              for suffix in (*constants.TOPIC_SUFFIXES, constants.FEEDBACK)]
    counts = asyncio.run(partition_counts(settings, topics))
    assert counts == dict.fromkeys(topics, 3)
    with caplog.at_level(logging.INFO, logger="streams.kafka_clients"):
        asyncio.run(ensure_topics(settings))  # a worker starting after produce
    assert [r for r in caplog.records if "created topics" in r.getMessage()] == []


def test_racing_creators_each_name_only_what_they_created(kafka, topic_prefix):
    """Two creators of the same new topics (a worker and `produce`): each topic is named
    by exactly one of them."""
    settings = Settings(kafka_bootstrap=kafka.bootstrap)
    names = {f"{topic_prefix}race{i}": 2 for i in range(6)}

    async def race() -> list[list[str]]:
        return list(await asyncio.gather(create_topics(settings, names),
                                         create_topics(settings, names)))

    first, second = asyncio.run(race())
    assert sorted(first + second) == sorted(names)
