"""The consumer loop's edges with in-memory stand-ins for the consumer, producer and store.

The real broker and redis-server are covered by tests/integration; here the loop's
decisions are driven one step at a time: what is checkpointed and committed after a
delivery failure, a revocation during a pending write, a write that completes after
the partition moved away, shutdown during a batch, restore outside the rebalance
callback, and a slow model's batch bounded by time.
"""

import asyncio
import time
from types import SimpleNamespace

import orjson
import pytest
from aiokafka import TopicPartition

from learners import checkpoint
from learners.learner import Learner
from learners.registry import ModelRegistry
from schemas.models_file import ModelsConfig
from schemas.settings import Settings
from streams.checkpoint_store import Restored
from streams.checkpointer import Checkpointer
from streams.metrics import Metrics
from streams.processor import EventProcessor
from streams.scoring import ScoringLoop

TOPIC = "t.events"
KEY = "loop-test-key"


def settings(**extra):
    return Settings(topic_prefix="t.", checkpoint_key=KEY, checkpoint_every=1,
                    commit_interval=0.001, **extra)


def message(partition, offset, label=True):
    value = orjson.dumps({"event_id": f"e{partition}-{offset}", "model": "default",
                          "features": {"x": float(offset)}, "label": label})
    return SimpleNamespace(topic=TOPIC, partition=partition, offset=offset, key=b"k",
                           value=value, timestamp=None)


class FakeConsumer:
    def __init__(self):
        self.batches: list[dict] = []
        self.commits: list[dict[int, int]] = []
        self.seeks: dict[int, int] = {}
        self.paused: set[int] = set()

    async def getmany(self, timeout_ms=0, max_records=None):
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(0.001)
        return {}

    async def commit(self, offsets):
        self.commits.append({tp.partition: meta.offset for tp, meta in offsets.items()})

    def seek(self, tp, offset):
        self.seeks[tp.partition] = offset

    def pause(self, *tps):
        self.paused |= {tp.partition for tp in tps}

    def resume(self, *tps):
        self.paused -= {tp.partition for tp in tps}

    def highwater(self, tp):
        return None

    def committed(self, partition):
        return max((c[partition] for c in self.commits if partition in c), default=None)


class FakeSender:
    def __init__(self):
        self.sent = []
        self.fail_next = False

    async def send(self, outputs):
        await asyncio.sleep(0)
        if self.fail_next:
            raise RuntimeError("broker said no")
        self.sent.extend(outputs)


class FakeStore:
    """Checkpoint store whose writes complete only when the test says so (``hold``)."""

    def __init__(self):
        self.saved: dict[int, dict[str, tuple[int, bytes]]] = {}
        self.hold = False
        self.gate = asyncio.Event()
        self.held = 0  # writes waiting at the gate
        self.restore_gate: asyncio.Event | None = None

    def where(self, partition, model):
        return checkpoint.Where("g", TOPIC, partition, model)

    async def save(self, partition, blobs):
        if self.hold:
            self.held += 1
            await self.gate.wait()
        self.saved.setdefault(partition, {}).update(blobs)
        return 0

    async def save_pending(self, partition, blobs, pending):
        await self.save(partition, blobs)
        return []

    async def pending(self, partition, model):
        return {}

    async def restore(self, partition, models):
        if self.restore_gate is not None:
            await self.restore_gate.wait()
        found = Restored()
        for model, (_offset, blob) in self.saved.get(partition, {}).items():
            header, learner = checkpoint.load(blob, self.where(partition, model), KEY.encode())
            found.learners[model] = (header.offset, learner)
        return found


def make_loop(store=None, **extra):
    s = settings(**extra)
    processor = EventProcessor(s, ModelRegistry(ModelsConfig.default(), 100))
    consumer, sender, store = FakeConsumer(), FakeSender(), store or FakeStore()
    checkpointer = Checkpointer(store, s, Metrics())
    loop = ScoringLoop(s, processor, Metrics(), consumer, sender, checkpointer)
    return loop, consumer, sender, store, checkpointer


async def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


async def assign(loop, *partitions):
    await loop.rebalancer.on_partitions_assigned([TopicPartition(TOPIC, p) for p in partitions])
    await wait_until(lambda: loop.ready)


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("in_flight", [False, True])
def test_a_delivery_failure_checkpoints_and_commits_nothing_past_it(in_flight):
    """A send that fails inside a slice, or while the slice's last part is in flight (the
    next step settles it): the partition fails, the worker stops, nothing past the last
    checkpoint is checkpointed or committed."""
    async def go():
        loop, consumer, sender, store, cp = make_loop()
        cp.start()
        await assign(loop, 0)
        await loop.handle([loop_record(0, i) for i in range(3)])  # settled: checkpointed
        await wait_until(lambda: store.saved.get(0, {}).get("default", (None,))[0] == 2)
        await loop.committer.commit()
        sender.fail_next = True
        with pytest.raises(RuntimeError, match="broker said no"):
            await loop.handle([loop_record(0, i) for i in range(3, 6)], hold=in_flight)
            await loop.settle()
        assert loop.partitions.get(0) is None  # its learners reflected undelivered events
        await loop.committer.commit()
        await loop.finish()
        await cp.stop()
        return store, consumer, loop
    store, consumer, loop = run(go())
    assert store.saved[0]["default"][0] == 2
    assert consumer.committed(0) == 3  # the next offset to read: just past the checkpoint
    assert isinstance(loop.fatal, RuntimeError)


def loop_record(partition, offset):
    from streams.records import Record
    m = message(partition, offset)
    return Record(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)


def test_a_revocation_during_a_pending_write_commits_only_what_is_written():
    async def go():
        store = FakeStore()
        loop, consumer, _sender, store, cp = make_loop(store)
        cp.start()
        await assign(loop, 0)
        store.hold = True  # the background write hangs
        await loop.handle([loop_record(0, i) for i in range(4)])
        await wait_until(lambda: store.held == 1)  # the background write reached Redis
        assert store.saved == {}
        revoke = asyncio.create_task(loop.rebalancer.on_partitions_revoked(
            [TopicPartition(TOPIC, 0)]))
        await wait_until(lambda: loop.lock.locked())  # the revocation is flushing
        # ... and its flush waits for the write in hand (a second writer of the partition's
        # pending hash would be refused): no second write, nothing durable, no commit
        assert store.held == 1 and consumer.commits == [] and not revoke.done()
        store.gate.set()  # Redis answers the pending write; the flush finds it durable
        await revoke
        await cp.stop()
        return consumer, store, loop
    consumer, store, loop = run(go())
    assert store.saved[0]["default"][0] == 3
    assert consumer.committed(0) == 4
    assert loop.partitions.get(0) is None


def test_a_write_completing_after_the_partition_moved_away_changes_nothing():
    async def go():
        loop, consumer, _sender, _store, cp = make_loop()
        await assign(loop, 0)
        await loop.handle([loop_record(0, i) for i in range(2)])
        state = loop.partitions.get(0)
        snap = await cp.snapshot(state, time.monotonic()).result()
        await loop.rebalancer.on_partitions_revoked([TopicPartition(TOPIC, 0)])
        await assign(loop, 0)  # back again: restored from the flush at revocation
        again = loop.partitions.get(0)
        durable = again.durable
        assert await cp._write(snap)  # the old generation's write lands now
        return again, durable, consumer
    again, durable, _consumer = run(go())
    assert again.durable == durable == 1
    assert again.generation == 2


@pytest.fixture
def slow_model(monkeypatch):
    """Every learner takes ``seconds`` per event (a k-NN over a large window, say)."""
    original = Learner.step

    def slow(seconds):
        def step(self, x, y):
            time.sleep(seconds)
            return original(self, x, y)
        monkeypatch.setattr(Learner, "step", step)
    return slow


def test_shutdown_during_a_batch_commits_only_what_was_delivered(slow_model):
    slow_model(0.02)

    async def go():
        loop, consumer, sender, _store, cp = make_loop(batch_max_seconds=0.05)
        cp.start()
        await assign(loop, 0)
        consumer.batches.append({TopicPartition(TOPIC, 0): [message(0, i) for i in range(20)]})
        runner = asyncio.create_task(loop.run())
        await wait_until(lambda: loop.partitions.get(0).delivered >= 0)
        loop.stopping = True
        await runner
        await loop.finish()
        await cp.stop()
        return loop, consumer, sender
    loop, consumer, sender = run(go())
    state = loop.partitions.get(0)
    assert 0 <= state.delivered < 19  # stopped part-way; the rest is the next owner's
    assert len(sender.sent) == state.delivered + 1
    assert consumer.committed(0) == state.delivered + 1 == state.durable + 1


def test_a_slow_batch_is_cut_by_time_and_the_rest_comes_next_in_order(slow_model):
    slow_model(0.01)

    async def go():
        loop, consumer, sender, _store, _cp = make_loop(batch_max_seconds=0.05)
        await assign(loop, 0)
        consumer.batches.append({TopicPartition(TOPIC, 0): [message(0, i) for i in range(30)]})
        ticks = 0

        async def ticker():  # stands for the web server and the heartbeat
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)
        beat = asyncio.create_task(ticker())
        runner = asyncio.create_task(loop.run())
        await wait_until(lambda: loop.partitions.get(0).delivered == 29, timeout=10)
        loop.stopping = True
        await runner
        beat.cancel()
        return sender, ticks
    sender, ticks = run(go())
    offsets = [orjson.loads(o.value)["offset"] for o in sender.sent]
    assert offsets == list(range(30))  # nothing skipped, nothing repeated, in order
    assert ticks >= 5  # the event loop ran between slices


def test_the_rebalance_callback_returns_before_a_slow_restore_ends():
    async def go():
        store = FakeStore()
        loop, consumer, sender, store, _cp = make_loop(store)
        store.restore_gate = asyncio.Event()
        started = time.perf_counter()
        await loop.rebalancer.on_partitions_assigned([TopicPartition(TOPIC, 0)])
        took = time.perf_counter() - started
        assert not loop.ready and consumer.paused == {0}
        await loop.handle([loop_record(0, 0)])  # records of a restoring partition: ignored
        assert sender.sent == []
        # A revocation during the restore cancels it cleanly.
        await loop.rebalancer.on_partitions_revoked([TopicPartition(TOPIC, 0)])
        assert loop.rebalancer.restoring == {} and loop.partitions.get(0) is None
        store.restore_gate.set()
        await loop.rebalancer.on_partitions_assigned([TopicPartition(TOPIC, 0)])
        await wait_until(lambda: loop.ready)
        return took, consumer
    took, consumer = run(go())
    assert took < 0.1
    assert consumer.paused == set()


class GatedSender(FakeSender):
    """Acknowledges only while ``gate`` is open; remembers, per send, what was delivered."""

    def __init__(self, loop_ref):
        super().__init__()
        self.gate = asyncio.Event()
        self.loop_ref = loop_ref
        self.delivered_at_send = []

    async def send(self, outputs):
        state = self.loop_ref[0].partitions.get(0)
        self.delivered_at_send.append(state.delivered)
        await self.gate.wait()
        await super().send(outputs)


class CoverageStore(FakeStore):
    """Checks, at each write, that the checkpoint reflects only delivered events."""

    def __init__(self, loop_ref):
        super().__init__()
        self.loop_ref = loop_ref
        self.writes = []

    async def save(self, partition, blobs):
        state = self.loop_ref[0].partitions.get(partition)
        self.writes.append((max(o for o, _ in blobs.values()), state.delivered))
        return await super().save(partition, blobs)


def test_the_next_slice_is_processed_while_the_last_ones_outputs_await_the_broker():
    """Cross-slice overlap, and what it must not change: outputs in order, a checkpoint
    written only of delivered events, commits only of delivered and written ones."""
    async def go():
        ref = []
        store = CoverageStore(ref)
        loop, consumer, _sender, store, cp = make_loop(store)
        ref.append(loop)
        sender = loop.sender = GatedSender(ref)
        cp.start()
        await assign(loop, 0)
        state = loop.partitions.get(0)
        consumer.batches += [{TopicPartition(TOPIC, 0): [message(0, i) for i in range(5)]},
                             {TopicPartition(TOPIC, 0): [message(0, i) for i in range(5, 10)]}]
        runner = asyncio.create_task(loop.run())
        # slice 2 is processed while slice 1's outputs are still unacknowledged
        await wait_until(lambda: state.processed == 9)
        assert state.delivered == -1 and sender.sent == [] and store.saved == {}
        assert len(sender.delivered_at_send) == 1  # slice 2 is not sent before slice 1's ack
        sender.gate.set()
        await wait_until(lambda: state.delivered == 9 and store.saved.get(0, {}).get(
            "default", (None,))[0] == 9)
        await wait_until(lambda: consumer.committed(0) == 10)
        loop.stopping = True
        await runner
        await loop.finish()
        await cp.stop()
        return sender, store
    sender, store = run(go())
    assert [orjson.loads(o.value)["offset"] for o in sender.sent] == list(range(10))
    assert sender.delivered_at_send == [-1, 4]  # each send after the one before was acked
    assert store.writes and all(offset <= delivered for offset, delivered in store.writes)


def test_a_revocation_waits_for_the_outputs_in_flight_and_checkpoints_them():
    async def go():
        ref = []
        loop, consumer, _sender, store, cp = make_loop(CoverageStore(ref))
        ref.append(loop)
        sender = loop.sender = GatedSender(ref)
        cp.start()
        await assign(loop, 0)
        await loop.handle([loop_record(0, i) for i in range(4)], hold=True)
        assert loop.inflight is not None and store.saved == {}
        revoke = asyncio.create_task(loop.rebalancer.on_partitions_revoked(
            [TopicPartition(TOPIC, 0)]))
        await wait_until(lambda: loop.lock.locked())
        assert not revoke.done() and consumer.commits == []  # waiting for the broker
        sender.gate.set()
        await revoke
        await cp.stop()
        return consumer, store, loop
    consumer, store, loop = run(go())
    assert store.saved[0]["default"][0] == 3  # delivered, then checkpointed at revocation
    assert consumer.committed(0) == 4
    assert loop.inflight is None and loop.partitions.get(0) is None
    assert all(offset <= delivered for offset, delivered in store.writes)


def test_the_checkpoint_age_is_zero_while_nothing_waits_for_a_checkpoint():
    """An idle partition whose events are all checkpointed is not stale (newcomer: the
    critical DriftlineCheckpointStale alert fired for idle partitions of a busy worker)."""
    async def go():
        loop, _consumer, _sender, store, cp = make_loop()
        cp.start()
        await assign(loop, 0)
        await loop.handle([loop_record(0, i) for i in range(3)])
        await wait_until(lambda: loop.partitions.get(0).durable == 2)
        loop.refresh_gauges()
        idle = loop.metrics.checkpoint_age.labels(partition="0")._value.get()
        store.hold = True  # the next checkpoint does not land
        await loop.handle([loop_record(0, 3)])
        loop.partitions.get(0).durable_at -= 30.0  # the last one was written 30 s ago
        loop.refresh_gauges()
        waiting = loop.metrics.checkpoint_age.labels(partition="0")._value.get()
        store.gate.set()
        await cp.stop()
        return idle, waiting
    idle, waiting = run(go())
    assert idle == 0.0
    assert waiting >= 30.0
