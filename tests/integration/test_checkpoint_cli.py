"""`driftline checkpoints ...` and the store against a real redis-server."""

import asyncio
import os

from learners import checkpoint
from learners.registry import ModelRegistry
from schemas.models_file import ModelsConfig
from schemas.settings import Settings
from streams.checkpoint_store import CheckpointStore
from streams.checkpointer import Checkpointer
from streams.metrics import Metrics
from streams.processor import EventProcessor
from streams.records import Record
from streams.redis_client import make_redis
from streams.sources import synthetic_events
from tests.helpers import run_cli
from tests.kafka_tools import create_topic

KEY = "cli-test-key"


def make_versions(redis_url, prefix, versions=3, per_version=100):
    """Train a partition-0 learner and save a checkpoint after every ``per_version`` events."""
    import orjson

    settings = Settings(topic_prefix=prefix, app_id=f"{prefix}app")
    processor = EventProcessor(settings, ModelRegistry(ModelsConfig.default(), 100))
    processor.partition(0)
    events = list(synthetic_events("sea", versions * per_version, None, 1, "default"))

    async def go():
        client = make_redis(Settings(redis_url=redis_url))
        store = CheckpointStore(client, KEY.encode(), 5, f"{prefix}app", f"{prefix}events")
        checkpointer = Checkpointer(store, Settings(checkpoint_key=KEY), Metrics())
        for v in range(versions):
            batch = events[v * per_version:(v + 1) * per_version]
            processor.process([Record(f"{prefix}events", 0, v * per_version + i, None,
                                      orjson.dumps(e), None) for i, e in enumerate(batch)])
            part = processor.partition(0)
            part.deliver(part.processed)  # no Kafka here: the outputs count as delivered
            await checkpointer.flush(part, timeout=5)
        await client.aclose()
    asyncio.run(go())


def cli_env(kafka, redis_url, prefix, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update({"DRIFTLINE_KAFKA_BOOTSTRAP": kafka.bootstrap, "DRIFTLINE_REDIS_URL": redis_url,
                "DRIFTLINE_TOPIC_PREFIX": prefix, "DRIFTLINE_APP_ID": f"{prefix}app",
                "DRIFTLINE_CHECKPOINT_KEY": KEY, **extra})
    return env


def test_flipped_newest_version_falls_back_and_counts(redis_url, topic_prefix):
    make_versions(redis_url, topic_prefix)

    async def go():
        client = make_redis(Settings(redis_url=redis_url))
        store = CheckpointStore(client, KEY.encode(), 5, f"{topic_prefix}app",
                                f"{topic_prefix}events")
        key = store.versions_key(0, "default")
        newest = bytearray(await client.lindex(key, 0))
        newest[-5] ^= 0x01
        await client.lset(key, 0, bytes(newest))
        metrics = Metrics()
        checkpointer = Checkpointer(store, Settings(checkpoint_key=KEY), metrics)
        found = await checkpointer.restore(0, ("default",))
        await client.aclose()
        return found, metrics
    found, metrics = asyncio.run(go())
    offset, learner = found.learners["default"]
    assert (offset, learner.n_learned) == (199, 200)
    assert found.rejected == [("default", 0, "checkpoint signature does not verify")]
    assert metrics.checkpoint_rejected.labels(reason="signature")._value.get() == 1


def test_only_the_last_k_versions_are_kept(redis_url, topic_prefix):
    make_versions(redis_url, topic_prefix, versions=7)
    import redis

    client = redis.Redis.from_url(redis_url)
    key = f"driftline:ckpt:{topic_prefix}app:{topic_prefix}events:0:default"
    offsets = [checkpoint.read_header(b, KEY.encode())[0].offset
               for b in client.lrange(key, 0, -1)]
    client.close()
    assert offsets == [699, 599, 499, 399, 299]


def test_list_show_export_import_rollback(kafka, redis_url, topic_prefix, tmp_path):
    make_versions(redis_url, topic_prefix)
    create_topic(kafka.bootstrap, f"{topic_prefix}events", partitions=1)
    env = cli_env(kafka, redis_url, topic_prefix)
    listed = run_cli("checkpoints", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "default" in listed.stdout and "299" in listed.stdout
    shown = run_cli("checkpoints", "show", "default", "0", "--version", "1", env=env)
    assert "offset 199" in shown.stdout and "learned 200" in shown.stdout

    exported = tmp_path / "model.ckpt"
    assert run_cli("checkpoints", "export", "default", "0", str(exported), env=env).returncode == 0
    header, _ = checkpoint.read_header(exported.read_bytes(), KEY.encode())
    assert header.offset == 299

    other = cli_env(kafka, redis_url, topic_prefix, DRIFTLINE_CHECKPOINT_KEY="another-cluster")
    refused = run_cli("checkpoints", "import", str(exported), "copy", "0", env=other)
    assert refused.returncode == 1
    assert refused.stderr.strip() == "driftline: checkpoint signature does not verify"
    moved = run_cli("checkpoints", "import", str(exported), "copy", "0",
                    "--source-key-env", "SOURCE_KEY", env={**other, "SOURCE_KEY": KEY})
    assert moved.returncode == 0, moved.stderr
    assert "at offset -1" in moved.stdout  # the topic is empty: the model learns from the start
    shown = run_cli("checkpoints", "show", "copy", "0", env=other)
    assert "learned 300" in shown.stdout

    back = run_cli("checkpoints", "rollback", "default", "0", env=env)
    assert "rolled back to offset 199 (200 learned)" in back.stdout
    assert "299" not in run_cli("checkpoints", "list", env=env).stdout.split("default")[1]
