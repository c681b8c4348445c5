"""The store and checkpointer against a real redis-server: what the group's commit names
decides which version is restored; nothing unsigned does (issue 12 §2)."""

import asyncio
import logging

import pytest
import redis.asyncio as aioredis

from learners import checkpoint
from schemas.settings import Settings
from streams.checkpoint_store import CheckpointStore
from streams.checkpointer import Checkpointer
from streams.commit_metadata import Identity, digest
from streams.exceptions import ServiceError
from streams.metrics import Metrics
from tests.integration.test_checkpoint_cli import KEY, make_versions


def run_with_store(redis_url, prefix, body):
    async def go():
        client = aioredis.Redis.from_url(redis_url)
        store = CheckpointStore(client, KEY.encode(), 5, f"{prefix}app", f"{prefix}events")
        try:
            return await body(client, store)
        finally:
            await client.aclose()
    return asyncio.run(go())


def checkpointer(store, metrics=None, **settings):
    return Checkpointer(store, Settings(checkpoint_key=KEY, **settings), metrics or Metrics())


def test_the_commit_decides_not_the_head_nor_the_unsigned_hash(redis_url, topic_prefix):
    make_versions(redis_url, topic_prefix, versions=7)  # offsets 299..699 kept, newest first

    async def body(client, store):
        key = store.versions_key(0, "default")
        blobs = await client.lrange(key, 0, -1)
        named = {"default": Identity(699, digest(blobs[0]))}
        await client.lpush(key, blobs[2])  # an older, validly signed version at the head
        await client.hset(store.offsets_key(0), "default", 10**15)
        found = await checkpointer(store).restore(0, ("default",), named)
        assert found.learners["default"][0] == 699
        assert found.digests["default"] == named["default"].digest
        created = [checkpoint.verify(b, KEY.encode())[0].created_at for b in blobs]
        assert found.created_at == {"default": created[0]}
        # The unsigned hash refuses no write.
        assert await store.save(0, {"default": (700, blobs[0])}) == 0
        assert await client.lindex(key, 0) == blobs[0]
        # Only older versions left: refused in one line, counted as "older".
        await client.delete(key)
        await client.rpush(key, blobs[2], blobs[3])
        metrics = Metrics()
        with pytest.raises(ServiceError, match=r"^partition 0 model default: its newest "
                           r"checkpoint \(offset 499\) is older than the one the committed "
                           r"offset names \(699\); refusing to go back"):
            await checkpointer(store, metrics).restore(0, ("default",), named)
        assert metrics.checkpoint_rejected.labels(reason="older")._value.get() == 1
        # A rollback asked for through the store is honoured once.
        await store.mark_rollback(0, "default", 499)
        found = await checkpointer(store).restore(0, ("default",), named)
        assert found.learners["default"][0] == 499
        assert found.created_at == {"default": created[2]}  # the older one's, not the head's
        with pytest.raises(ServiceError, match="older than"):
            await checkpointer(store).restore(0, ("default",), named)
        # An unsigned marker is no rollback.
        await client.set(store.rollback_key(0, "default"), b"499:forged")
        with pytest.raises(ServiceError, match="older than"):
            await checkpointer(store).restore(0, ("default",), named)
        # A newer version that is there but corrupt falls back (replay is exact).
        corrupt = bytearray(blobs[0])
        corrupt[-3] ^= 0x01
        await client.lpush(key, bytes(corrupt))
        found = await checkpointer(store).restore(0, ("default",), named)
        assert found.learners["default"][0] == 499
        await client.lpop(key)
        # With `fresh`, the model starts afresh and the start is counted.
        metrics = Metrics()
        found = await checkpointer(store, metrics, checkpoint_unverifiable="fresh").restore(
            0, ("default",), named)
        assert found.learners == {}
        assert metrics.fresh_starts.labels(model="default")._value.get() == 1
    run_with_store(redis_url, topic_prefix, body)


def test_junk_versions_are_read_only_up_to_keep_and_warned_about_briefly(
        redis_url, topic_prefix, caplog):
    make_versions(redis_url, topic_prefix, versions=2)

    async def body(client, store):
        key = store.versions_key(0, "default")
        await client.lpush(key, *[b"junk-%d" % i for i in range(3_000)])
        metrics = Metrics()
        with caplog.at_level(logging.WARNING, logger="streams.checkpoint_store"), \
                pytest.raises(ServiceError, match=r"^partition 0 model default: no stored "
                                                  r"version verifies: checkpoint is truncated;"):
            await checkpointer(store, metrics).restore(0, ("default",))
        assert metrics.checkpoint_rejected.labels(reason="invalid")._value.get() == 5
        lines = [r for r in caplog.records if r.name == "streams.checkpoint_store"]
        assert len(lines) == 4  # three refusals, then one line counting the rest
        assert "2 more versions refused" in lines[-1].getMessage()
    run_with_store(redis_url, topic_prefix, body)


def test_a_refusal_stops_with_its_own_line(redis_url, topic_prefix):
    make_versions(redis_url, topic_prefix, versions=1)

    async def body(client, store):
        other = CheckpointStore(client, b"another-key-of-at-least-32-bytes!!", 5,
                                store.group, store.topic)
        metrics = Metrics()
        with pytest.raises(ServiceError, match=r"no stored version verifies: checkpoint "
                                               r"signature does not verify \(wrong "
                                               r"DRIFTLINE_CHECKPOINT_KEY"):
            await checkpointer(other, metrics).restore(0, ("default",))
        assert metrics.checkpoint_rejected.labels(reason="signature")._value.get() == 1
    run_with_store(redis_url, topic_prefix, body)


def test_a_big_write_gets_a_timeout_scaled_to_its_size(redis_url, topic_prefix):
    async def go():
        client = aioredis.Redis.from_url(redis_url, socket_timeout=0.01)
        store = CheckpointStore(client, KEY.encode(), 5, f"{topic_prefix}app",
                                f"{topic_prefix}events")
        blob = b"x" * 60_000_000  # far more than 0.01 s of socket time
        try:
            assert await store.save(0, {"default": (1, blob)}) == 0
            assert store.write_timeout(len(blob)) == 0.01 + 6.0
            check = aioredis.Redis.from_url(redis_url)
            assert await check.llen(store.versions_key(0, "default")) == 1
            await check.aclose()
            pool = client.connection_pool
            assert all(c.socket_timeout == 0.01 for c in pool._available_connections)
        finally:
            await client.aclose()
    asyncio.run(go())
