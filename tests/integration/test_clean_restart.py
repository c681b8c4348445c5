"""A graceful stop and restart with late labels on warns of nothing, while a checkpoint
really written by another writer is still reported (real broker, real redis-server).

When only labels arrive after the last event, the worker checkpoints again at the same
events offset: the feedback topic's commit names that checkpoint, the events topic's
commit still names the previous one. A restart used to warn "digest differs" for it.
"""

import asyncio
import time
import urllib.request
from dataclasses import replace

import orjson
import pytest
import redis
from aiokafka.errors import KafkaError

from learners import checkpoint
from schemas.settings import Settings
from streams.kafka_clients import make_admin
from tests.helpers import wait_for
from tests.kafka_tools import create_topic, produce

pytestmark = pytest.mark.integration

N = 300
FAST = {"DRIFTLINE_CHECKPOINT_INTERVAL": "0.5", "DRIFTLINE_COMMIT_INTERVAL": "0.5",
        "DRIFTLINE_SESSION_TIMEOUT": "6", "DRIFTLINE_HEARTBEAT_INTERVAL": "1"}
MISLEADING = ("digest differs", "changed by another writer")


def committed(bootstrap: str, group: str) -> dict[str, int]:
    """The group's committed offset per topic (partition 0)."""
    async def go() -> dict[str, int]:
        admin = make_admin(Settings(kafka_bootstrap=bootstrap))
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        except KafkaError:  # the group's coordinator is not there yet
            return {}
        finally:
            await admin.close()
        return {tp.topic: meta.offset for tp, meta in offsets.items() if tp.partition == 0}
    return asyncio.run(go())


def streams_warnings(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if ("WARNING streams." in line or "ERROR streams." in line)]


def test_a_clean_restart_warns_of_nothing_and_another_writer_is_still_reported(
        kafka, redis_url, topic_prefix, start_worker):
    events, feedback = f"{topic_prefix}events", f"{topic_prefix}feedback"
    group = f"{topic_prefix}app"
    create_topic(kafka.bootstrap, events, partitions=1)
    create_topic(kafka.bootstrap, feedback, partitions=1)
    ids = [f"e{i}" for i in range(N)]
    produce(kafka.bootstrap, events, [(i.encode(), orjson.dumps(
        {"event_id": i, "model": "default", "features": {"x0": n % 7, "x1": n % 3}}))
        for n, i in enumerate(ids)])
    first = start_worker(**FAST)
    wait_for(lambda: committed(kafka.bootstrap, group).get(events) == N, 120,
             "events committed")
    produce(kafka.bootstrap, feedback, [(i.encode(), orjson.dumps(
        {"event_id": i, "model": "default", "label": n % 2 == 0})) for n, i in enumerate(ids)])
    wait_for(lambda: committed(kafka.bootstrap, group).get(feedback) == N, 120,
             "labels committed")
    assert first.stop() == 0

    second = start_worker(**FAST)
    wait_for(lambda: f"partition 0 restored at offset {N - 1}" in second.log(), 120,
             "second worker restored")
    assert second.stop() == 0
    assert streams_warnings(second.log()) == []
    assert "\x1b" not in first.log() + second.log()  # no terminal escapes in a log file
    assert not any(text in first.log() + second.log() for text in MISLEADING)

    # Another writer stores a checkpoint of the same offset (same learner, other bytes).
    key = second.env["DRIFTLINE_CHECKPOINT_KEY"].encode()
    client = redis.Redis.from_url(redis_url)
    versions = f"driftline:ckpt:{group}:{events}:0:default"
    header, payload = checkpoint.read_header(client.lindex(versions, 0), key)
    written = header.created_at - 3600  # an hour old: the checkpoint age goes on from it
    client.lpush(versions, checkpoint.seal(replace(header, created_at=written), payload, key))
    client.close()
    third = start_worker(**FAST)
    wait_for(lambda: f"partition 0 restored at offset {N - 1}" in third.log(), 120,
             "third worker restored")
    port = third.env["DRIFTLINE_WEB_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=10) as answer:
        age = orjson.loads(answer.read())["default"]["0"]["checkpoint"]["age_seconds"]
    assert 3600 <= age <= time.time() - written  # not restarted at 0 by the restore
    assert third.stop() == 0
    assert streams_warnings(third.log()) == [next(
        line for line in third.log().splitlines() if "digest differs" in line)]
    assert f"checkpoint at offset {N - 1} is not the one the commit names" in third.log()
