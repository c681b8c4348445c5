"""The worker follows the events topic's shape: partitions added while it runs are
consumed within seconds and covered by /ready."""

import asyncio
import json
import time
import urllib.request

import orjson
from aiokafka.admin import NewPartitions

from schemas.settings import Settings
from streams.kafka_clients import make_admin
from streams.sources import synthetic_events
from tests.helpers import wait_for
from tests.kafka_tools import consume_until, create_topic, produce


def add_partitions(bootstrap: str, topic: str, total: int) -> None:
    async def run() -> None:
        admin = make_admin(Settings(kafka_bootstrap=bootstrap))
        await admin.start()
        try:
            await admin.create_partitions({topic: NewPartitions(total_count=total)})
        finally:
            await admin.close()
    asyncio.run(run())


def ready(port: str) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
    except OSError:
        return {}


def test_partitions_added_while_running_are_consumed_within_seconds(kafka, topic_prefix,
                                                                    start_worker):
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=1)
    worker = start_worker(DRIFTLINE_METADATA_MAX_AGE="2")
    port = worker.env["DRIFTLINE_WEB_PORT"]
    wait_for(lambda: ready(port).get("ready"), 90, "the worker to be ready")
    add_partitions(kafka.bootstrap, topic, 3)
    events = list(synthetic_events("sea", 30, None, 5, "default"))
    produce(kafka.bootstrap, topic, [(e["event_id"].encode(), orjson.dumps(e))
                                     for e in events[:10]], partition=2)
    predictions = consume_until(
        kafka.bootstrap, f"{topic_prefix}predictions",
        lambda records: sum(orjson.loads(r.value)["partition"] == 2 for r in records) >= 10,
        timeout=30)
    on_new = [orjson.loads(r.value) for r in predictions]
    assert sorted(p["offset"] for p in on_new if p["partition"] == 2) == list(range(10))
    state = wait_for(lambda: (lambda r: r if r.get("ready") else None)(ready(port)), 30,
                     "the worker to be ready again")
    assert state["assigned"] == state["restored"] == [0, 1, 2]
    assert worker.alive(), worker.log()[-2000:]


SLOW_MODELS = """
[models.default]
task = "classification"
pipeline = "neighbors.KNNClassifier(n_neighbors=5, engine=neighbors.LazySearch(window_size=20000))"
"""


def health_seconds(port: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as answer:
        assert answer.status == 200
    return time.perf_counter() - started


def test_a_slow_model_keeps_the_worker_responsive_and_in_its_group(kafka, topic_prefix,
                                                                   start_worker, tmp_path):
    """k-NN over a growing window: several ms per event, 1,000-event fetches. Work per step
    is bounded by time, so /health answers within 1 s and no commit fails while it catches
    up."""
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=1)
    n = 12_000
    events = list(synthetic_events("sea", n, None, 11, "default"))
    produce(kafka.bootstrap, topic, [(e["event_id"].encode(), orjson.dumps(e)) for e in events])
    models = tmp_path / "models.toml"
    models.write_text(SLOW_MODELS)
    worker = start_worker(DRIFTLINE_MODELS=str(models), DRIFTLINE_SESSION_TIMEOUT="3",
                          DRIFTLINE_HEARTBEAT_INTERVAL="1")
    port = worker.env["DRIFTLINE_WEB_PORT"]
    wait_for(lambda: ready(port).get("ready"), 90, "the worker to be ready")
    slowest = 0.0
    deadline = time.monotonic() + 300
    while True:
        slowest = max(slowest, health_seconds(port))
        done = metric(port, "driftline_events_consumed_total")
        if done >= n or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # the probe's period, not synchronisation
    log = worker.log()
    assert done >= n, log[-2000:]
    assert slowest < 1.0, f"/health took {slowest:.2f}s"
    assert "CommitFailedError" not in log and "UnknownMemberId" not in log, log[-3000:]
    assert worker.alive(), log[-2000:]


def metric(port: str, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0
