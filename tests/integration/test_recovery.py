"""Issue 4 acceptance: effectively-once learning across kill -9, rebalances, a corrupted
checkpoint, and a Redis outage; predictions at-least-once and identical when repeated."""

import contextlib
import random
import signal
import subprocess
import urllib.request

import orjson
import redis

from streams.localservices.redis import RedisServer
from streams.sources import synthetic_events
from tests.helpers import wait_for
from tests.kafka_tools import count, create_topic, produce, set_topic_config
from tests.recovery import assert_effectively_once, send_probes, wait_for_probes

FAST_GROUP = {"DRIFTLINE_SESSION_TIMEOUT": "2", "DRIFTLINE_HEARTBEAT_INTERVAL": "0.5"}


def send_stream(bootstrap, topic, n, seed):
    events = list(synthetic_events("sea", n, drift_at=n // 2, seed=seed, model="default"))
    messages = [(e["event_id"].encode(), orjson.dumps(e)) for e in events]
    landed = produce(bootstrap, topic, messages)
    return [(meta.partition, meta.offset, orjson.loads(value))
            for (_, value), meta in zip(messages, landed, strict=True)]


def metric(port: str, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith(name) and not line.startswith("#")]
    return sum(values)


def test_kill_9_three_times_learns_each_event_once(kafka, topic_prefix, start_worker):
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=2)
    events = send_stream(kafka.bootstrap, topic, 30_000, seed=11)
    predictions_topic = f"{topic_prefix}predictions"
    worker = start_worker(**FAST_GROUP)
    points = sorted(random.Random(5).sample(range(2_000, 28_000), 3))
    for point in points:
        wait_for(lambda p=point: count(kafka.bootstrap, predictions_topic) >= p, 120,
                 f"{point} predictions")
        assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
        worker = start_worker(**FAST_GROUP)
    probes = send_probes(kafka.bootstrap, topic, 2)
    predictions = wait_for_probes(kafka.bootstrap, topic_prefix, probes)
    assert worker.alive()
    stats = assert_effectively_once(events, probes, predictions)
    print(f"\nkill -9 after {points} predictions: {stats}")


def test_survivor_takes_over_from_checkpoints(kafka, topic_prefix, start_worker):
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=4)
    events = send_stream(kafka.bootstrap, topic, 30_000, seed=12)
    doomed = start_worker(**FAST_GROUP, DRIFTLINE_BATCH_MAX="100")
    survivor = start_worker(**FAST_GROUP, DRIFTLINE_BATCH_MAX="100")
    wait_for(lambda: "partitions assigned: " in doomed.log() and
             "partitions assigned: " in survivor.log() and
             count(kafka.bootstrap, f"{topic_prefix}predictions") >= 8_000,
             120, "both workers scoring")
    doomed.stop(signal.SIGKILL)
    probes = send_probes(kafka.bootstrap, topic, 4)
    predictions = wait_for_probes(kafka.bootstrap, topic_prefix, probes)
    assert survivor.alive()
    assert survivor.log().count("restored at offset") >= 1
    stats = assert_effectively_once(events, probes, predictions)
    print(f"\ntwo workers, one killed: {stats}")


def test_flipped_byte_falls_back_to_previous_version(kafka, redis_url, topic_prefix,
                                                     start_worker):
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=2)
    events = send_stream(kafka.bootstrap, topic, 6_000, seed=13)
    env = {**FAST_GROUP, "DRIFTLINE_CHECKPOINT_EVERY": "500"}
    first = start_worker(**env)
    wait_for(lambda: count(kafka.bootstrap, f"{topic_prefix}predictions") >= 6_000, 120,
             "the first pass")
    assert first.stop(signal.SIGTERM) == 0
    client = redis.Redis.from_url(redis_url)
    key = f"driftline:ckpt:{topic_prefix}app:{topic}:0:default"
    versions = client.lrange(key, 0, -1)
    assert 2 <= len(versions) <= 5  # a previous version to fall back to; at most K kept
    newest = bytearray(versions[0])
    newest[len(newest) // 2] ^= 0x01
    client.lset(key, 0, bytes(newest))
    client.close()
    second = start_worker(**env)
    probes = send_probes(kafka.bootstrap, topic, 2)
    predictions = wait_for_probes(kafka.bootstrap, topic_prefix, probes)
    assert metric(second.env["DRIFTLINE_WEB_PORT"], "driftline_checkpoints_rejected_total") == 1
    assert "checkpoint refused: model=default partition=0 version=0" in second.log()
    stats = assert_effectively_once(events, probes, predictions)
    assert stats["repeats"] > 0  # the events after the previous version were scored again
    print(f"\nflipped byte: {stats}")


def test_redis_outage_loses_nothing(kafka, topic_prefix, start_worker, tmp_path):
    server = RedisServer.create(tmp_path / "redis", appendonly=True)
    server.start(die_with_parent=True)
    try:
        topic = f"{topic_prefix}events"
        create_topic(kafka.bootstrap, topic, partitions=2)
        first_half = send_stream(kafka.bootstrap, topic, 10_000, seed=14)
        worker = start_worker(**FAST_GROUP, DRIFTLINE_REDIS_URL=server.url,
                              DRIFTLINE_CHECKPOINT_INTERVAL="0.5")
        port = worker.env["DRIFTLINE_WEB_PORT"]
        wait_for(lambda: count(kafka.bootstrap, f"{topic_prefix}predictions") >= 10_000, 120,
                 "the first half scored")
        server.stop()
        second_half = send_stream(kafka.bootstrap, topic, 10_000, seed=15)
        wait_for(lambda: count(kafka.bootstrap, f"{topic_prefix}predictions") >= 20_000, 60,
                 "scoring to go on while Redis is down")
        wait_for(lambda: metric(port, "driftline_checkpoint_failures_total") > 0, 30,
                 "checkpoint failures to be counted")
        outage = 10.0
        # The outage lasts 10 s and the worker must live on (the wait ends early if it dies).
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.proc.wait(timeout=outage)
        assert worker.alive(), worker.log()[-2000:]
        server.start(die_with_parent=True)
        client = redis.Redis.from_url(server.url)
        offsets_key = f"driftline:ckpt-offsets:{topic_prefix}app:{topic}:1"
        last = max(o for p, o, _ in first_half + second_half if p == 1)
        wait_for(lambda: int(client.hget(offsets_key, "default") or -1) == last, 60,
                 "checkpoints to resume")
        client.close()
        probes = send_probes(kafka.bootstrap, topic, 2)
        predictions = wait_for_probes(kafka.bootstrap, topic_prefix, probes)
        assert worker.alive()
        stats = assert_effectively_once(first_half + second_half, probes, predictions)
        print(f"\nRedis down {outage:.0f}s: {stats}, failures "
              f"{metric(port, 'driftline_checkpoint_failures_total'):.0f}")
    finally:
        server.stop()


def test_a_rejected_output_stops_the_worker_without_checkpointing_past_it(
        kafka, redis_url, topic_prefix, start_worker):
    """The broker refuses one prediction (too large for the topic): the worker must stop
    with nothing checkpointed or committed past that event, and a restart after the topic
    is fixed must give every event its prediction, learned exactly once."""
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=1)
    create_topic(kafka.bootstrap, f"{topic_prefix}predictions", 1,
                 {"max.message.bytes": "4000"})
    events = send_stream(kafka.bootstrap, topic, 3_000, seed=16)
    big = {**events[0][2], "event_id": "big-key"}
    landed = produce(kafka.bootstrap, topic, [(b"k" * 6_000, orjson.dumps(big))])
    events.append((landed[0].partition, landed[0].offset, big))
    events += send_stream(kafka.bootstrap, topic, 500, seed=17)
    # One event per batch, so each output record batch holds one record and only the
    # big-keyed prediction exceeds the topic's limit (which Kafka applies per batch).
    env = {**FAST_GROUP, "DRIFTLINE_CHECKPOINT_EVERY": "700", "DRIFTLINE_BATCH_MAX": "1"}
    first = start_worker(**env)
    wait_for(lambda: not first.alive(), 120, "the worker to stop on the refused output")
    assert first.proc.returncode != 0
    client = redis.Redis.from_url(redis_url)
    stored = int(client.hget(f"driftline:ckpt-offsets:{topic_prefix}app:{topic}:0",
                             "default") or -1)
    client.close()
    assert 0 <= stored < landed[0].offset, "a checkpoint covers the event whose output failed"
    set_topic_config(kafka.bootstrap, f"{topic_prefix}predictions",
                     {"max.message.bytes": str(4 * 1024 * 1024)})
    start_worker(**env)
    probes = send_probes(kafka.bootstrap, topic, 1)
    predictions = wait_for_probes(kafka.bootstrap, topic_prefix, probes)
    stats = assert_effectively_once(events, probes, predictions)
    assert any(p.event_id == "big-key" for p in predictions)
    assert stats["repeats"] > 0  # what came after the last checkpoint was scored again
    print(f"\nrefused output: checkpoint stayed at {stored} < {landed[0].offset}; {stats}")
