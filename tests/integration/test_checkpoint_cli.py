"""`driftline checkpoints ...` and the store against a real redis-server."""

import asyncio
import os
import re
from dataclasses import asdict, replace
from pathlib import Path

import cramjam
import orjson
import pytest

from learners import checkpoint
from learners.registry import ModelRegistry
from schemas.models_file import ModelsConfig
from schemas.settings import Settings
from streams.checkpoint_store import CheckpointStore
from streams.checkpointer import Checkpointer
from streams.commands.checkpoints import group_members
from streams.metrics import Metrics
from streams.processor import EventProcessor
from streams.records import Record
from streams.redis_client import make_redis
from streams.sources import synthetic_events
from tests.helpers import run_cli, wait_for
from tests.kafka_tools import create_topic

KEY = "cli-test-key-of-at-least-32-bytes!"
OTHER_KEY = "another-cluster-key-of-32-bytes-or-more"
MODELS = """
[models.default]
task = "classification"
pipeline = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"
[models.copy]
task = "classification"
pipeline = "preprocessing.StandardScaler()|linear_model.LogisticRegression( l2=0.0 )"
[models.trees]
task = "classification"
pipeline = "tree.HoeffdingTreeClassifier()"
"""


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


def cli_env(kafka, redis_url, prefix, tmp_path=None, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update({"DRIFTLINE_KAFKA_BOOTSTRAP": kafka.bootstrap, "DRIFTLINE_REDIS_URL": redis_url,
                "DRIFTLINE_TOPIC_PREFIX": prefix, "DRIFTLINE_APP_ID": f"{prefix}app",
                "DRIFTLINE_CHECKPOINT_KEY": KEY})
    if tmp_path is not None:
        models = tmp_path / "models.toml"
        models.write_text(MODELS)
        env["DRIFTLINE_MODELS"] = str(models)
    env.update(extra)
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
    env = cli_env(kafka, redis_url, topic_prefix, tmp_path)
    listed = run_cli("checkpoints", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "default" in listed.stdout and "299" in listed.stdout
    shown = run_cli("checkpoints", "show", "default", "0", "--version", "1", env=env)
    assert "offset 199" in shown.stdout and "learned 200" in shown.stdout
    assert (f"written by format 3, River {checkpoint.RIVER_VERSION}, Python "
            f"{checkpoint.PYTHON_VERSION}, Driftline {checkpoint.DRIFTLINE_VERSION}"
            in shown.stdout)
    assert re.search(r"^  codec zstd \(\d{4,} bytes uncompressed\)$", shown.stdout, re.M)
    for command in ("show", "export"):  # a version that is not there: says which are
        extra = [str(tmp_path / "x.ckpt")] if command == "export" else []
        missing = run_cli("checkpoints", command, "default", "0", *extra, "--version", "7",
                          env=env)
        assert (missing.returncode, missing.stderr) == (1, (
            "driftline: model default partition 0 has no version 7: it has versions 0 (the "
            "newest) to 2\n"))

    exported = tmp_path / "model.ckpt"
    assert run_cli("checkpoints", "export", "default", "0", str(exported), env=env).returncode == 0
    header, _ = checkpoint.read_header(exported.read_bytes(), KEY.encode())
    assert header.offset == 299

    other = cli_env(kafka, redis_url, topic_prefix, tmp_path, DRIFTLINE_CHECKPOINT_KEY=OTHER_KEY)
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


def _evil_blob(marker, key, where):
    """A correctly signed checkpoint whose pickle runs ``touch marker`` if unpickled freely."""
    cmd = f"touch {marker}".encode()
    payload = (b"\x80\x04\x8c\x05posix\x8c\x06system\x93(\x8c" + bytes([len(cmd)]) + cmd
               + b"tR.")
    return checkpoint.seal(checkpoint._header(where, 5, 10, 0.0), payload, key)


def test_import_and_show_refuse_a_malicious_checkpoint_and_run_nothing(
        kafka, redis_url, topic_prefix, tmp_path):
    make_versions(redis_url, topic_prefix, versions=1)
    create_topic(kafka.bootstrap, f"{topic_prefix}events", partitions=1)
    marker = tmp_path / "pwned"
    vendor_key = "vendor-key-of-at-least-thirty-two-bytes"
    evil = tmp_path / "vendor.ckpt"
    evil.write_bytes(_evil_blob(marker, vendor_key.encode(),
                                checkpoint.Where("vendor", "v.events", 0, "theirs")))
    env = cli_env(kafka, redis_url, topic_prefix, tmp_path, VENDOR_KEY=vendor_key)
    refused = run_cli("checkpoints", "import", str(evil), "copy", "0",
                      "--source-key-env", "VENDOR_KEY", env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "driftline: checkpoint refers to posix.system, which is not allowed")
    assert not marker.exists()
    listed = run_cli("checkpoints", "list", env=env).stdout
    assert "copy" not in listed  # nothing was written

    # An attacker who can write to Redis *and* knows the key plants one: show refuses it too.
    import redis

    client = redis.Redis.from_url(redis_url)
    store_key = f"driftline:ckpt:{topic_prefix}app:{topic_prefix}events:0:default"
    client.lpush(store_key, _evil_blob(marker, KEY.encode(), checkpoint.Where(
        f"{topic_prefix}app", f"{topic_prefix}events", 0, "default")))
    client.close()
    shown = run_cli("checkpoints", "show", "default", "0", env=env)
    assert shown.returncode == 1
    assert shown.stderr.strip() == (
        "driftline: checkpoint refers to posix.system, which is not allowed")
    assert not marker.exists()


def test_import_refuses_a_learner_of_another_model(kafka, redis_url, topic_prefix, tmp_path):
    make_versions(redis_url, topic_prefix, versions=1)
    create_topic(kafka.bootstrap, f"{topic_prefix}events", partitions=1)
    env = cli_env(kafka, redis_url, topic_prefix, tmp_path)
    exported = tmp_path / "model.ckpt"
    assert run_cli("checkpoints", "export", "default", "0", str(exported), env=env).returncode == 0
    refused = run_cli("checkpoints", "import", str(exported), "trees", "0", env=env)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "models file's trees is a classification model 'tree.HoeffdingTreeClassifier()'" \
        in refused.stderr
    missing = run_cli("checkpoints", "import", str(exported), "nosuch", "0", env=env)
    assert missing.stderr.strip() == ("driftline: model nosuch is not in the models file: "
                                      "add it first")


def test_every_command_refuses_a_short_key_in_one_line(kafka, redis_url, topic_prefix, tmp_path):
    env = cli_env(kafka, redis_url, topic_prefix, tmp_path, DRIFTLINE_CHECKPOINT_KEY="short-key")
    exported = tmp_path / "x.ckpt"
    exported.write_bytes(b"")
    for args in (("list",), ("show", "default", "0"), ("rollback", "default", "0"),
                 ("export", "default", "0", str(exported)),
                 ("import", str(exported), "default", "0")):
        out = run_cli("checkpoints", *args, env=env)
        assert out.returncode == 1, args
        assert out.stderr == ("driftline: DRIFTLINE_CHECKPOINT_KEY is 9 bytes: it must be at "
                              "least 32 (e.g. `openssl rand -hex 32`)\n"), args
    short_source = run_cli("checkpoints", "import", str(exported), "default", "0",
                           "--source-key-env", "SRC", env={**env, "DRIFTLINE_CHECKPOINT_KEY": KEY,
                                                           "SRC": "tiny"})
    assert short_source.stderr.strip() == (
        "driftline: SRC is 4 bytes: it must be at least 32 (e.g. `openssl rand -hex 32`)")


def test_the_worker_refuses_a_short_key_before_consuming(kafka, redis_url, topic_prefix,
                                                          tmp_path):
    env = cli_env(kafka, redis_url, topic_prefix, tmp_path,
                  DRIFTLINE_CHECKPOINT_KEY="x" * 31, DRIFTLINE_WEB_PORT="0")
    out = run_cli("worker", env=env, timeout=60)
    assert out.returncode == 1
    assert out.stderr == ("driftline: DRIFTLINE_CHECKPOINT_KEY is 31 bytes: it must be at least "
                          "32 (e.g. `openssl rand -hex 32`)\n")


def test_import_refuses_a_blob_declaring_a_huge_payload_in_one_line(
        kafka, redis_url, topic_prefix, tmp_path):
    # Signed with the source key, but its 2 GiB declared payload is ~20 bytes stored: refused
    # from its sizes alone (the importer allocated the declared size before).
    create_topic(kafka.bootstrap, f"{topic_prefix}events", partitions=1)
    vendor_key = b"vendor-key-of-at-least-thirty-two-bytes"
    header = replace(checkpoint._header(checkpoint.Where("v", "v.events", 0, "m"), 5, 1, 0.0,
                                        "zstd"), size=checkpoint.MAX_PAYLOAD_BYTES)
    stored = bytes(cramjam.zstd.compress(b"tiny", level=3))
    head = orjson.dumps(asdict(header))
    body = len(head).to_bytes(4, "big") + head + stored
    bomb = tmp_path / "bomb.ckpt"
    bomb.write_bytes(checkpoint.sign(body, vendor_key) + body)
    env = cli_env(kafka, redis_url, topic_prefix, tmp_path, VENDOR_KEY=vendor_key.decode())
    refused = run_cli("checkpoints", "import", str(bomb), "default", "0",
                      "--source-key-env", "VENDOR_KEY", env=env)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"driftline: checkpoint declares a payload of {checkpoint.MAX_PAYLOAD_BYTES} bytes from "
        f"{len(stored)} stored; refusing to decompress more than {checkpoint.RATIO_FLOOR}\n")
    assert "default" not in run_cli("checkpoints", "list", env=env).stdout  # nothing written


def test_rollback_and_import_refuse_while_a_worker_of_the_group_runs(
        kafka, redis_url, topic_prefix, tmp_path, start_worker):
    make_versions(redis_url, topic_prefix)
    create_topic(kafka.bootstrap, f"{topic_prefix}events", partitions=1)
    env = cli_env(kafka, redis_url, topic_prefix, tmp_path)
    exported = tmp_path / "model.ckpt"
    assert run_cli("checkpoints", "export", "default", "0", str(exported), env=env).returncode == 0
    settings = Settings(kafka_bootstrap=kafka.bootstrap, app_id=f"{topic_prefix}app")
    worker = start_worker(DRIFTLINE_CHECKPOINTS="false")  # in the group; leaves Redis alone
    members = wait_for(lambda: asyncio.run(group_members(settings)), 120, "worker in the group")
    assert len(members) == 1 and members[0].startswith(f"{topic_prefix}app")

    refusal = (f"driftline: consumer group {topic_prefix}app has 1 active member "
               f"({members[0]}): stop its workers before you {{}}, or pass --force\n")
    refused = run_cli("checkpoints", "rollback", "default", "0", env=env)
    assert (refused.returncode, refused.stderr) == (1, refusal.format("roll back"))
    refused = run_cli("checkpoints", "import", str(exported), "copy", "0", env=env)
    assert (refused.returncode, refused.stderr) == (1, refusal.format("import"))
    listed = run_cli("checkpoints", "list", env=env).stdout
    assert "copy" not in listed and "299" in listed.split("default")[1]  # nothing changed
    forced = run_cli("checkpoints", "rollback", "default", "0", "--force", env=env)
    assert "rolled back to offset 199 (200 learned)" in forced.stdout, forced.stderr

    assert worker.stop() == 0
    wait_for(lambda: not asyncio.run(group_members(settings)), 60, "the group is empty")
    back = run_cli("checkpoints", "rollback", "default", "0", env=env)
    assert back.returncode == 0, back.stderr
    assert "rolled back to offset 99 (100 learned)" in back.stdout
    moved = run_cli("checkpoints", "import", str(exported), "copy", "0", env=env)
    assert moved.returncode == 0, moved.stderr


def test_import_refuses_a_file_larger_than_any_checkpoint_without_reading_it(
        kafka, redis_url, topic_prefix, tmp_path):
    huge = tmp_path / "huge.ckpt"
    with huge.open("wb") as f:  # sparse: no disk used, and never read
        f.truncate(checkpoint.MAX_PAYLOAD_BYTES + 2 * 1024**2)
    env = cli_env(kafka, redis_url, topic_prefix, tmp_path)
    refused = run_cli("checkpoints", "import", str(huge), "default", "0", "--force", env=env)
    assert refused.returncode == 1
    assert refused.stderr == (f"driftline: {huge} is {huge.stat().st_size} bytes: larger than "
                              f"any checkpoint ({checkpoint.MAX_PAYLOAD_BYTES + 1024**2} at "
                              "most)\n")


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_import_refuses_a_file_that_is_not_a_regular_file_without_reading_it(
        kafka, redis_url, topic_prefix, tmp_path, kind):
    """/dev/zero or a pipe reports size 0: refused before reading (it filled memory)."""
    if kind == "device":
        source = Path("/dev/zero")
    else:
        source = tmp_path / "pipe"
        os.mkfifo(source)  # nobody writes: reading it would block
    env = cli_env(kafka, redis_url, topic_prefix, tmp_path)
    refused = run_cli("checkpoints", "import", str(source), "default", "0", "--force", env=env)
    assert (refused.returncode, refused.stderr) == (1, f"driftline: {source}: not a regular "
                                                       "file\n")
