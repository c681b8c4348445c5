"""Issue 12 §2: the checkpoint chain is bound to the group's Kafka commits (real broker and
redis-server). Redis losing its data, an older version pushed to the head, a rollback below
the log start, and a topic re-created under a checkpoint are each refused or reported."""

import asyncio
import signal

import orjson
import redis
from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete

from schemas.settings import Settings
from streams.commit_metadata import decode
from streams.kafka_clients import make_admin
from streams.localservices.workers import worker_env
from tests.helpers import run_cli, wait_for
from tests.integration.test_recovery import FAST_GROUP, metric, send_stream
from tests.kafka_tools import count, create_topic
from tests.recovery import send_probes, wait_for_probes

ENV = {**FAST_GROUP, "DRIFTLINE_CHECKPOINT_EVERY": "500", "DRIFTLINE_BATCH_MAX": "100"}


def first_run(kafka, topic_prefix, start_worker, n=2_000):
    """One partition, ``n`` events scored, the worker stopped cleanly (final checkpoint and
    commit); returns the events as (partition, offset, event)."""
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=1)
    events = send_stream(kafka.bootstrap, topic, n, seed=21)
    worker = start_worker(**ENV)
    wait_for(lambda: count(kafka.bootstrap, f"{topic_prefix}predictions") >= n, 120,
             "the first pass")
    assert worker.stop(signal.SIGTERM) == 0
    return events


def committed(kafka, topic_prefix):
    """The group's committed offset and metadata of partition 0."""
    async def run():
        admin = make_admin(Settings(kafka_bootstrap=kafka.bootstrap))
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(f"{topic_prefix}app")
        finally:
            await admin.close()
        meta = offsets[TopicPartition(f"{topic_prefix}events", 0)]
        return meta.offset, meta.metadata
    return asyncio.run(run())


def versions_key(topic_prefix):
    return f"driftline:ckpt:{topic_prefix}app:{topic_prefix}events:0:default"


def stopped(worker):
    wait_for(lambda: not worker.alive(), 120, "the worker to stop")
    return worker.proc.returncode


def test_commit_names_the_checkpoint_and_flushdb_stops_the_worker(
        kafka, redis_url, topic_prefix, start_worker):
    events = first_run(kafka, topic_prefix, start_worker)
    offset, metadata = committed(kafka, topic_prefix)
    assert offset == len(events)
    named = decode(metadata)
    assert named is not None and named["default"].offset == len(events) - 1
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    worker = start_worker(**ENV)
    assert stopped(worker) != 0
    line = (f"partition 0 model default: the committed offset names its checkpoint at offset "
            f"{len(events) - 1} (digest {named['default'].digest}), but Redis has no "
            "checkpoint of it")
    assert line in worker.log()
    assert "restored at offset" not in worker.log()
    # With the policy `fresh`, the model starts blank at the committed offset and says so.
    fresh = start_worker(**ENV, DRIFTLINE_CHECKPOINT_UNVERIFIABLE="fresh")
    probes = send_probes(kafka.bootstrap, f"{topic_prefix}events", 1)
    predictions = wait_for_probes(kafka.bootstrap, topic_prefix, probes)
    port = fresh.env["DRIFTLINE_WEB_PORT"]
    assert metric(port, "driftline_checkpoint_fresh_starts_total") == 1
    assert "starting it afresh (DRIFTLINE_CHECKPOINT_UNVERIFIABLE=fresh)" in fresh.log()
    after = [p for p in predictions if p.event_id in probes]
    assert len(after) == len(probes) and all(p.model_version == 0 for p in after)
    assert len(predictions) == len(events) + len(probes)  # nothing replayed, nothing skipped


def test_an_older_version_at_the_head_is_passed_over_and_alone_refused(
        kafka, redis_url, topic_prefix, start_worker):
    events = first_run(kafka, topic_prefix, start_worker)
    client = redis.Redis.from_url(redis_url)
    key = versions_key(topic_prefix)
    versions = client.lrange(key, 0, -1)
    assert len(versions) >= 4
    client.lpush(key, versions[2])  # an attacker replays an older, validly signed version
    client.hset(f"driftline:ckpt-offsets:{topic_prefix}app:{topic_prefix}events:0",
                "default", 10**15)  # nor does the unsigned offsets hash decide anything
    worker = start_worker(**ENV)
    wait_for(lambda: "restored at offset" in worker.log(), 60, "the restore")
    assert f"partition 0 restored at offset {len(events) - 1}" in worker.log()
    probes = send_probes(kafka.bootstrap, f"{topic_prefix}events", 1)
    wait_for_probes(kafka.bootstrap, topic_prefix, probes)
    wait_for(lambda: committed(kafka, topic_prefix)[0] == len(events) + len(probes), 60,
             "the commit to cover the probes (writes were not refused)")
    assert worker.stop(signal.SIGTERM) == 0
    # Only older versions left (the newer ones deleted): refused, the worker stops.
    newest = client.lindex(key, 0)
    client.delete(key)
    client.rpush(key, versions[2], versions[3])
    offset, metadata = committed(kafka, topic_prefix)
    second = start_worker(**ENV)
    assert stopped(second) != 0
    assert ("is older than the one the committed offset names "
            f"({decode(metadata)['default'].offset}); refusing to go back") in second.log()
    assert newest is not None and offset == len(events) + len(probes)
    client.close()


def test_rollback_below_the_log_start_is_a_counted_gap(
        kafka, redis_url, topic_prefix, start_worker, tmp_path):
    events = first_run(kafka, topic_prefix, start_worker)
    client = redis.Redis.from_url(redis_url)
    offsets = [orjson.loads(v[36:36 + int.from_bytes(v[32:36], "big")])["offset"]
               for v in client.lrange(versions_key(topic_prefix), 0, -1)]
    client.close()
    target = offsets[2]  # two versions back
    log_start = target + 201

    async def delete_records():
        admin = make_admin(Settings(kafka_bootstrap=kafka.bootstrap))
        await admin.start()
        try:
            await admin.delete_records(
                {TopicPartition(f"{topic_prefix}events", 0): RecordsToDelete(log_start)})
        finally:
            await admin.close()
    asyncio.run(delete_records())
    env = worker_env(kafka.bootstrap, redis_url, topic_prefix, tmp_path)
    cli = run_cli("checkpoints", "rollback", "default", "0", "--steps", "2", env=env)
    assert cli.returncode == 0, cli.stderr
    worker = start_worker(**ENV)
    wait_for(lambda: "events were dropped by retention" in worker.log(), 60, "the gap report")
    port = worker.env["DRIFTLINE_WEB_PORT"]
    assert metric(port, "driftline_offset_gap_total") == 1
    assert metric(port, "driftline_offset_gap_events_total") == log_start - (target + 1)
    assert f"rolled back to offset {target} as requested" in worker.log()
    assert len(events) > log_start


def test_a_topic_recreated_under_a_checkpoint_stops_the_partition(
        kafka, redis_url, topic_prefix, start_worker):
    events = first_run(kafka, topic_prefix, start_worker, n=600)
    topic = f"{topic_prefix}events"

    async def delete_topic():
        admin = make_admin(Settings(kafka_bootstrap=kafka.bootstrap))
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()
    asyncio.run(delete_topic())

    def recreated():
        try:
            create_topic(kafka.bootstrap, topic, partitions=1)
        except Exception:
            return False
        return True
    wait_for(recreated, 60, "the topic to be re-created")
    send_stream(kafka.bootstrap, topic, 100, seed=22)
    worker = start_worker(**ENV)
    assert stopped(worker) != 0
    assert (f"partition 0: the checkpoint resumes at offset {len(events)}, past the log end "
            "100 (topic deleted, re-created or truncated?); stopping") in worker.log()
