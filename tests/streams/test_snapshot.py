"""Snapshots serialised in a forked child: they reflect the instant of the fork, never
pickle the live learners in the worker, keep the event loop responsive, and a failing
or dying child is one line, never a partial checkpoint."""

import asyncio
import os
import signal
import socket
import time

import pytest

from learners import checkpoint, safe_pickle
from learners.learner import Learner
from learners.partition_state import Partitions, StateError
from learners.registry import ModelRegistry
from schemas.models_file import ModelsConfig, ModelSpec
from schemas.settings import Settings
from streams.checkpointer import Checkpointer
from streams.metrics import Metrics
from streams.snapshot import CAN_FORK, Forked, SnapshotFailed, pack, reaped, unpack
from tests.learners.estimator_sweep import events

pytestmark = pytest.mark.skipif(not CAN_FORK, reason="forking snapshots need Linux")
KEY = "snapshot-test-key-of-at-least-32-bytes"
WIDE = ModelSpec(task="classification", pipeline="preprocessing.StandardScaler() | "
                 "linear_model.LogisticRegression()", max_features=100_010)


class Store:
    """Names checkpoints only (``where``): these tests never write to Redis."""

    def where(self, partition, model):
        return checkpoint.Where("g", "t.events", partition, model)


def checkpointer(mode="fork"):
    return Checkpointer(Store(), Settings(checkpoint_key=KEY, checkpoint_snapshot=mode),
                        Metrics())


def partition_with(stream, n, spec=None):
    """A partition state whose default model learned ``stream[:n]`` (all delivered)."""
    config = ModelsConfig.default()
    if spec is not None:
        config = ModelsConfig(models={"default": spec})
    state = Partitions(ModelRegistry(config, 100), checkpoints=True).assign(0)
    state.restore({})
    learner = state.learner("default")
    for offset, (x, y) in enumerate(stream[:n]):
        learner.step(x, y)
        state.advance(offset)
    if n:
        state.deliver(n - 1)
    return state, learner


def twin(stream, n, spec):
    learner = Learner.from_spec(spec, 100)
    for x, y in stream[:n]:
        learner.step(x, y)
    return learner


def same_steps(a, b, probes):
    for x, y in probes:
        sa, sb = a.step(x, y), b.step(x, y)
        assert repr((sa.prediction, sa.scores)) == repr((sb.prediction, sb.scores))


def test_a_forked_snapshot_is_the_state_at_the_fork_and_never_pickles_the_live_learner(
        monkeypatch):
    stream = list(events("classification", 400))
    state, live = partition_with(stream, 200)
    parent, pickled_here = os.getpid(), []
    real = safe_pickle.dumps

    def watched(obj):
        if os.getpid() == parent:
            pickled_here.append(type(obj).__name__)
        return real(obj)

    monkeypatch.setattr(safe_pickle, "dumps", watched)

    async def go():
        pending = checkpointer().snapshot(state, 0.0)
        assert pending.forked is not None and pending.taken.blobs == {"default": (199, b"")}
        for offset, (x, y) in enumerate(stream[200:300], start=200):  # the live one moves on
            live.step(x, y)
            state.advance(offset)
        return await pending.result()

    snap = asyncio.run(go())
    assert pickled_here == []
    assert (snap.partition, snap.offset, state.snapshotted) == (0, 199, 199)
    header, restored = checkpoint.load(snap.blobs["default"][1],
                                       checkpoint.Where("g", "t.events", 0, "default"),
                                       KEY.encode())
    assert (header.offset, header.codec, restored.n_learned) == (199, "zstd", 200)
    spec = ModelsConfig.default().models["default"]
    same_steps(restored, twin(stream, 200, spec), stream[300:])  # bit-identical at 199
    same_steps(live, twin(stream, 300, spec), stream[300:])  # the live one: untouched


def test_forked_and_inline_snapshots_write_the_same_learner():
    stream = list(events("classification", 300))
    blobs = {}
    for mode in ("fork", "inline"):
        state, _ = partition_with(stream, 150)
        pending = checkpointer(mode).snapshot(state, 0.0)
        assert (pending.forked is None) == (mode == "inline")
        snap = asyncio.run(pending.result())
        blobs[mode] = checkpoint.read_header(snap.blobs["default"][1], KEY.encode())[1]
    assert blobs["fork"] == blobs["inline"]


def test_a_snapshot_ahead_of_delivery_is_written_only_once_delivery_covers_it():
    """The loop processes the next slice while the last one's outputs await the broker, so
    a snapshot may reflect undelivered events; Redis may not take it before they are out."""
    stream = list(events("classification", 50))
    state, live = partition_with(stream, 10)
    live.step(*stream[10])
    state.advance(10)  # processed 10, delivered 9
    snap = asyncio.run(checkpointer().snapshot(state, 0.0).result())
    assert snap.offset == 10 and not state.covers(snap)
    with pytest.raises(StateError, match="checkpoint at 10 beyond delivered 9"):
        state.written(snap)
    assert state.durable == -1
    state.deliver(10)
    assert state.covers(snap) and state.written(snap) and state.durable == 10


def test_the_event_loop_keeps_ticking_while_a_100k_feature_snapshot_is_serialised():
    rows = [({f"f{e}_{k}": float(k % 7) for k in range(5_000)}, e % 2 == 0) for e in range(20)]

    async def longest_gap(take):
        gap, done = 0.0, asyncio.Event()

        async def ticker():
            nonlocal gap
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.001)
                gap, last = max(gap, time.perf_counter() - last), time.perf_counter()

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.005)
        snap = await take()
        done.set()
        await tick
        return gap, snap

    gaps = {}
    for mode in ("inline", "fork"):
        state, _ = partition_with(rows, 20, WIDE)
        cp = checkpointer(mode)
        gaps[mode], snap = asyncio.run(longest_gap(lambda cp=cp, s=state: cp.snapshot(s, 0.0)
                                                   .result()))
        header, _ = checkpoint.verify(snap.blobs["default"][1], KEY.encode())
        assert header.size > 5_000_000  # 100,000 weights and scaler statistics
    assert gaps["fork"] < gaps["inline"] / 2, gaps


def test_a_child_that_raises_is_one_line_naming_the_error():
    async def go():
        return await Forked(lambda: (_ for _ in ()).throw(ValueError("no\nway"))).result()

    with pytest.raises(SnapshotFailed, match=r"^ValueError: no way$"):
        asyncio.run(go())


def test_a_child_that_dies_is_refused_never_a_partial_snapshot():
    def die():
        os.kill(os.getpid(), signal.SIGKILL)
        return b"never"

    async def go():
        return await Forked(die).result()

    with pytest.raises(SnapshotFailed, match=r"was killed by SIGKILL before it wrote"):
        asyncio.run(go())


def test_the_child_holds_none_of_the_workers_sockets():
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        def probe():
            try:
                os.fstat(listener.fileno())
            except OSError:
                return b"closed"
            return b"open"

        async def go():
            return await Forked(probe).result()

        assert asyncio.run(go()) == b"closed"
        assert os.fstat(listener.fileno())  # the parent's is untouched
    finally:
        listener.close()


def test_a_cancelled_snapshot_kills_and_reaps_its_child():
    async def go():
        forked = Forked(lambda: time.sleep(60) or b"late")
        forked.cancel()
        deadline = time.monotonic() + 10
        while not forked._reaped:
            assert time.monotonic() < deadline, "child not reaped"
            await asyncio.sleep(0.01)
        return forked.pid

    pid = asyncio.run(go())
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_pack_round_trips_and_refuses_truncation():
    blobs = {"a": b"\x00" * 10, "é": b"", "c": os.urandom(100)}
    assert unpack(pack(blobs)) == blobs
    with pytest.raises(SnapshotFailed, match="truncated"):
        unpack(pack(blobs)[:-1])


def test_a_snapshot_awaited_by_a_cancelled_writer_kills_and_reaps_its_child():
    async def go():
        forked = Forked(lambda: time.sleep(60) or b"late")
        waiting = asyncio.create_task(forked.result())
        await asyncio.sleep(0)  # let it start reading
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await reaped()
        return forked

    forked = asyncio.run(go())
    assert forked._reaped and forked._read == -1
    with pytest.raises(ChildProcessError):
        os.waitpid(forked.pid, os.WNOHANG)


def test_a_hung_child_is_killed_after_the_snapshot_timeout_and_counted():
    from streams.checkpointer import SnapshotJob

    stream = list(events("classification", 10))
    state, _ = partition_with(stream, 5)
    cp = Checkpointer(Store(), Settings(checkpoint_key=KEY, checkpoint_snapshot_timeout=0.5),
                      Metrics())
    taken = state.snapshot(lambda name, learner, offset: b"", 0.0)

    async def go():
        job = SnapshotJob(taken, Forked(lambda: time.sleep(60) or b"late"))
        started = time.monotonic()
        snap = await cp._taken(job)
        await reaped()
        return job, snap, time.monotonic() - started

    job, snap, took = asyncio.run(go())
    assert snap is None and took < 10
    assert cp.metrics.checkpoint_failures._value.get() == 1
    assert job.forked._reaped
    with pytest.raises(ChildProcessError):
        os.waitpid(job.forked.pid, os.WNOHANG)


def test_auto_pickles_a_small_checkpoint_inline_and_forks_once_it_is_large(monkeypatch):
    from streams import checkpointer as module

    stream = list(events("classification", 30))
    state, _ = partition_with(stream, 10)
    cp = checkpointer("auto")

    async def snap():
        job = cp.snapshot(state, 0.0)
        return job, await cp._taken(job)

    job, first = asyncio.run(snap())
    assert job.forked is None and first.blobs["default"][1]  # small: inline
    monkeypatch.setattr(module, "FORK_MIN_BYTES", len(first.blobs["default"][1]))
    job, second = asyncio.run(snap())
    assert job.forked is not None  # as large as the threshold: forked
    header, restored = checkpoint.load(second.blobs["default"][1],
                                       Store().where(0, "default"), KEY.encode())
    assert header.offset == 9 and restored.n_learned == 10
