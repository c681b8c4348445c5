"""Late-label state in a real redis-server: each model's pending-predictions hash is
written with its learner blob, incrementally, guarded by the hash's content digest; a
write made on another writer's hash (a zombie) is refused and the next one is full; a
hash that is not the one the checkpoint wrote is refused at restore."""

import asyncio

import orjson
import pytest

from learners.registry import ModelRegistry
from schemas.models_file import ModelsConfig
from schemas.settings import Settings
from streams.checkpoint_store import CheckpointStore
from streams.checkpointer import Checkpointer
from streams.exceptions import ServiceError
from streams.metrics import Metrics
from streams.processor import EventProcessor
from streams.records import Record
from tests.integration.test_checkpoint_cli import KEY
from tests.integration.test_checkpoint_store_binding import run_with_store

pytestmark = pytest.mark.integration
T0 = 1_767_225_600_000
CONFIG = ModelsConfig.model_validate({"models": {"m": {
    "task": "classification", "pipeline": "linear_model.LogisticRegression()"}}})


class Worker:
    """A processor and checkpointer of partition 0 over one store (no Kafka)."""

    def __init__(self, store: CheckpointStore, **settings) -> None:
        self.settings = Settings(topic_prefix="d.", checkpoint_key=KEY, **settings)
        self.proc = EventProcessor(self.settings, ModelRegistry(CONFIG, 100))
        self.state = self.proc.partitions.assign(0)
        self.cp = Checkpointer(store, self.settings, Metrics(), self.proc.partitions)

    async def restore(self):
        """Restore partition 0 as a new owner does: (found, feedback offsets)."""
        found = await self.cp.restore(0, ("m",))
        offsets = await self.cp.restore_pending(0, found, self.state.feedback)
        self.state.restore(found.learners, 0.0, 0.0, offsets)
        return found, offsets

    @property
    def offset(self) -> int:
        return self.state.processed

    @property
    def fb_offset(self) -> int:
        return self.state.fb.processed

    def events(self, ids: range) -> None:
        records = []
        for n, i in enumerate(ids):
            records.append(Record("d.events", 0, self.offset + 1 + n, b"k", orjson.dumps(
                {"event_id": f"e{i}", "model": "m", "features": {"x": float(i % 5)}}),
                T0 + i))
        self.deliver(records)

    def labels(self, ids: range) -> None:
        records = []
        for n, i in enumerate(ids):
            records.append(Record("d.feedback", 0, self.fb_offset + 1 + n, b"k", orjson.dumps(
                {"event_id": f"e{i}", "model": "m", "label": i % 2 == 0}), T0 + 10_000 + i))
        self.deliver(records)

    def deliver(self, records: list[Record]) -> None:
        result = self.proc.process_batch(records)
        for _, offset in result.last_offsets.items():
            self.state.deliver(offset)
        for _, offset in result.last_feedback_offsets.items():
            self.state.deliver_feedback(offset)

    async def checkpoint(self):
        snap = await self.cp.snapshot(self.state, 0.0).result()
        assert await self.cp._write(snap)
        return snap


async def restored(store, **settings):
    """What a new owner of partition 0 restores: (found, its pending store or None, fb
    offsets)."""
    other = Worker(store, **settings)
    found, offsets = await other.restore()
    return found, other.state.feedback.stores.get("m"), offsets


def same_store(a, b) -> bool:
    return (a.entries == b.entries and a.early == b.early and a.learned == b.learned
            and a.totals == b.totals)


def test_incremental_writes_restore_exactly(redis_url, topic_prefix):
    async def body(client, store):
        w = Worker(store)
        w.state.restore({})
        w.events(range(0, 300))
        first = await w.checkpoint()
        assert first.pending["m"].full and len(first.pending["m"].hset) == 300
        w.labels(range(0, 100))
        w.events(range(300, 350))
        second = await w.checkpoint()
        delta = second.pending["m"]
        # 100 entries dropped, 100 learned ids and 50 entries added: O(changes)
        assert not delta.full and len(delta.hdel) == 100 and len(delta.hset) == 150
        assert await client.hlen(store.pending_key(0, "m")) == 200 + 100 + 50
        found, feedback, offsets = await restored(store)
        assert offsets == {"m": 99}
        assert found.learners["m"][1].n_learned == 100
        assert same_store(feedback, w.state.feedback.stores["m"])
    run_with_store(redis_url, topic_prefix, body)


def test_a_zombie_write_is_refused_and_the_next_write_is_full(redis_url, topic_prefix, caplog):
    async def body(client, store):
        zombie = Worker(store)
        zombie.state.restore({})
        zombie.events(range(0, 200))
        await zombie.checkpoint()
        owner = Worker(store)  # the partition moved: the new owner restores that checkpoint
        await owner.restore()
        zombie.events(range(200, 210))  # the old owner goes on a little, then writes
        owner.events(range(1000, 1020))
        zsnap = await zombie.cp.snapshot(zombie.state, 0.0).result()
        assert await store.save_pending(0, zsnap.blobs, zsnap.pending) == []
        osnap = await owner.cp.snapshot(owner.state, 0.0).result()
        assert not osnap.pending["m"].full
        assert await owner.cp._write(osnap)  # taken by Redis, but its base is gone: refused
        assert owner.state.durable < osnap.offset  # so nothing became durable
        owner.events(range(1020, 1030))
        full = await owner.checkpoint()
        assert full.pending["m"].full and owner.state.durable == full.offset
        found, feedback, _ = await restored(store)
        assert same_store(feedback, owner.state.feedback.stores["m"])
        assert found.learners["m"][0] == owner.state.processed
    with caplog.at_level("WARNING", logger="streams.checkpointer"):
        run_with_store(redis_url, topic_prefix, body)
    warned = [r.getMessage() for r in caplog.records if "another writer" in r.getMessage()]
    assert warned == ["checkpoint of m not written: its pending-predictions hash was changed "
                      "by another writer (a worker that lost the partition?); the next "
                      "checkpoint rewrites it in full"]


def test_a_hash_that_is_not_the_checkpoints_is_refused(redis_url, topic_prefix):
    async def body(client, store):
        w = Worker(store)
        w.state.restore({})
        w.events(range(0, 50))
        await w.checkpoint()
        key = store.pending_key(0, "m")
        name, value = next(iter((await client.hgetall(key)).items()))
        await client.hdel(key, name)  # a field lost (partial write, eviction...)
        with pytest.raises(ServiceError, match="pending predictions do not match"):
            await restored(store)
        found, feedback, offsets = await restored(store, checkpoint_unverifiable="fresh")
        assert "m" not in found.learners and feedback is None and offsets == {}
        await client.hset(key, name, value)
        found, feedback, _ = await restored(store)  # exactly the hash written: accepted
        assert same_store(feedback, w.state.feedback.stores["m"])
    run_with_store(redis_url, topic_prefix, body)


def test_a_fallback_to_an_older_version_goes_on_without_pending_predictions(
        redis_url, topic_prefix, caplog):
    async def body(client, store):
        w = Worker(store)
        w.state.restore({})
        w.events(range(0, 40))
        older = await w.checkpoint()
        w.events(range(40, 80))
        await w.checkpoint()
        key = store.versions_key(0, "m")
        newest = bytearray(await client.lindex(key, 0))
        newest[-1] ^= 1  # corrupt: the restore falls back to the older version
        await client.lset(key, 0, bytes(newest))
        found, feedback, offsets = await restored(store)
        assert found.learners["m"][0] == older.offset
        assert len(feedback) == 0 and offsets == {"m": -1}
        assert "no longer stored" in caplog.text
    run_with_store(redis_url, topic_prefix, body)


def test_a_flush_while_a_write_is_in_flight_is_not_refused(redis_url, topic_prefix, caplog):
    # The background writer has taken a snapshot and is writing it (a large one) when a
    # revocation or shutdown flushes the partition: the flush's delta builds on that
    # write, so it must land after it, with no "another writer" warning.
    async def body(client, store):
        w = Worker(store, checkpoint_snapshot="inline")
        w.state.restore({}, 0.0, 0.0)
        w.events(range(0, 200))
        await w.checkpoint()
        w.events(range(200, 15_000))  # a large delta (~15k pending predictions)
        w.labels(range(0, 50))
        entered, gate = asyncio.Event(), asyncio.Event()
        save_pending = store.save_pending

        async def held(*args, **kwargs):  # the background write waits at the gate
            if not entered.is_set():
                entered.set()
                await gate.wait()
            return await save_pending(*args, **kwargs)

        store.save_pending = held
        w.cp.start()
        w.cp.submit(w.cp.snapshot(w.state, 0.0))  # the background writer takes it
        await asyncio.wait_for(entered.wait(), 10)  # ... and is writing it
        w.labels(range(50, 100))
        flushing = asyncio.ensure_future(w.cp.flush(w.state, timeout=10))
        await asyncio.sleep(0.05)  # the flush is under way while the write is held
        gate.set()
        assert await flushing
        await w.cp.stop()
        assert w.state.durable == w.offset and w.state.fb.durable == w.fb_offset
        found, feedback, offsets = await restored(store)
        assert found.learners["m"][0] == w.offset and offsets == {"m": w.fb_offset}
        assert same_store(feedback, w.state.feedback.stores["m"])
    with caplog.at_level("WARNING"):
        run_with_store(redis_url, topic_prefix, body)
    assert not [r for r in caplog.records if "another writer" in r.getMessage()]
