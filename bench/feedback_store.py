"""Cost of the late-label pending store: memory per entry, and checkpoint writes and
restore through the worker's own code on a real redis-server.

Writes and restores go exactly the worker's way: ``PendingHashes.seal`` (what
``Checkpointer.snapshot`` calls per model) and ``checkpoint.dump`` with the hash summary
in the header, then ``CheckpointStore.save_pending`` (the Lua script that writes the blob
and the hash write, guarded by the hash digest); restore is ``PendingHashes.restore``
(``HSCAN`` in pages, every field verified, count and digest checked, store loaded).

Run: ``.venv/bin/python -m bench.feedback_store [--sizes 10000,100000,1000000]``.
Starts its own redis-server (AOF on, as the worker's), writes the section between
the markers in ``docs/benchmarks.md`` and prints it.
"""

import argparse
import asyncio
import gc
import os
import platform
import random
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from learners import checkpoint
from learners.feedback import PartitionFeedback, PendingPredictions, Received
from learners.learner import Learner
from schemas.models_file import ModelSpec
from schemas.settings import Settings
from streams.checkpoint_store import CheckpointStore, PendingWrite, Restored
from streams.localservices.redis import RedisServer
from streams.pending_checkpoints import PendingHashes

BEGIN, END = "<!-- feedback-store:begin -->", "<!-- feedback-store:end -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
KEY = "k" * 32
MODEL = "default"
SPEC = ModelSpec(task="classification",
                 pipeline="preprocessing.StandardScaler() | linear_model.LogisticRegression()")
#: One checkpoint interval: DRIFTLINE_CHECKPOINT_EVERY = 1,000 labels learned while
#: 1,000 new unlabelled events were scored.
INTERVAL = 1_000


def event_features(rng: random.Random) -> dict[str, float]:
    """10 numeric features parsed from JSON, as the processor gets them."""
    raw = orjson.dumps({f"x{k}": rng.gauss(0.0, 1.0) for k in range(10)})
    return orjson.loads(raw)  # type: ignore[no-any-return]


def fill(store: PendingPredictions, n: int, rng: random.Random, start: int = 0) -> None:
    for i in range(start, start + n):
        p = rng.random()
        store.add(f"ev-{i}", i, event_features(rng), (p > 0.5, {True: p, False: 1.0 - p}), i)


def memory_per_entry(n: int) -> tuple[float, float]:
    """Bytes per pending entry (store alone, after a checkpoint cut), and of the same
    features kept as the parsed dict instead, for comparison."""
    rng = random.Random(1)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    store = PendingPredictions(10**12, 60_000, 10**7)
    fill(store, n, rng)
    store.changes_since_last_checkpoint()
    gc.collect()
    per_entry = (tracemalloc.get_traced_memory()[0] - base) / n
    del store
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    dicts = [event_features(rng) for _ in range(n)]
    per_dict = (tracemalloc.get_traced_memory()[0] - base) / n
    del dicts
    tracemalloc.stop()
    return per_entry, per_dict


async def checkpoint_write(store: CheckpointStore, hashes: PendingHashes, learner: Learner,
                           pending: PendingPredictions, offset: int,
                           watermark: int) -> tuple[float, float, PendingWrite]:
    """One checkpoint of one model as the worker writes it: (seconds to seal and sign,
    seconds in Redis, the hash write)."""
    started = time.perf_counter()
    write, header = hashes.seal(0, MODEL, pending, watermark, offset)
    blob = checkpoint.dump(learner, store.where(0, MODEL), offset, KEY.encode(), time.time(),
                           feedback=header)
    sealed = time.perf_counter() - started
    started = time.perf_counter()
    refused = await store.save_pending(0, {MODEL: (offset, blob)}, {MODEL: write})
    written = time.perf_counter() - started
    assert not refused
    return sealed, written, write


async def measure(url: str, n: int) -> dict[str, float]:
    rng = random.Random(n)
    client = aioredis.Redis.from_url(url, socket_timeout=60)
    store = CheckpointStore(client, KEY.encode(), 3, f"bench{n}", "bench.events")
    settings = Settings(checkpoint_key=KEY)
    hashes = PendingHashes(settings, store.where)
    pending = PendingPredictions(10**12, 60_000, 10**7)
    fill(pending, n, rng)
    learner = Learner.from_spec(SPEC, cooldown=100)
    for i in range(100):
        learner.step(event_features(rng), i % 2 == 0)
    seal_full, write_full, first = await checkpoint_write(store, hashes, learner, pending, n, n)
    assert first.full
    # One checkpoint interval: INTERVAL new events, INTERVAL oldest ones labelled.
    fill(pending, INTERVAL, rng, start=n)
    for i in range(INTERVAL):
        pending.match(f"ev-{i}", True, Received(i, None, b"{}", n + INTERVAL), n + INTERVAL)
    seal_delta, write_delta, delta = await checkpoint_write(
        store, hashes, learner, pending, n + INTERVAL, n + INTERVAL)
    assert not delta.full
    gc.collect()
    found = Restored()
    blob = await client.lindex(store.versions_key(0, MODEL), 0)
    header, restored_learner = checkpoint.load(blob, store.where(0, MODEL), KEY.encode())
    found.learners[MODEL] = (header.offset, restored_learner)
    assert header.feedback is not None
    found.feedback[MODEL] = header.feedback
    feedback = PartitionFeedback(lambda _: PendingPredictions(10**12, 60_000, 10**7))

    def refused(model: str, why: str) -> None:
        raise AssertionError(why)
    started = time.perf_counter()
    await PendingHashes(settings, store.where).restore(0, found, feedback, store.pending,
                                                       refused)
    restore = time.perf_counter() - started
    restored = feedback.stores[MODEL]
    assert restored.entries == pending.entries and restored.learned == pending.learned
    redis_bytes = int(await client.memory_usage(store.pending_key(0, MODEL), samples=0) or 0)
    await client.flushdb()
    await client.aclose()
    return {"n": n, "full_bytes": first.nbytes, "blob_bytes": len(blob), "seal_full": seal_full,
            "write_full": write_full, "delta_fields": len(delta.hset) + len(delta.hdel),
            "delta_bytes": delta.nbytes,
            "seal_delta": seal_delta, "write_delta": write_delta, "restore": restore,
            "redis_bytes": redis_bytes}


def render(rows: list[dict[str, float]], per_entry: float, per_dict: float, n_mem: int) -> str:
    mib = 1024 * 1024
    lines = [
        BEGIN,
        "## Late labels: the pending store",
        "",
        f"Measured by `python -m bench.feedback_store` on {datetime.now(UTC):%Y-%m-%d %H:%M} "
        f"UTC (Python {platform.python_version()}, a real redis-server with AOF, on the shared "
        f"2-core machine, 1-minute load average {os.getloadavg()[0]:.1f} at the end: timings "
        "are noisy, sizes exact). Entries have 10 numeric features parsed from JSON, a binary "
        "classifier's prediction and probabilities. Writes and restore run the worker's own "
        "code: `PendingHashes.seal` + `checkpoint.dump` (sign), then "
        "`CheckpointStore.save_pending` (the Lua script writing the learner blob and the hash "
        "write, guarded by the hash digest); restore is `PendingHashes.restore` (`HSCAN` in "
        "pages, every field verified, count and digest checked, store loaded).",
        "",
        f"Memory: **{per_entry:,.0f} bytes per pending entry** (tracemalloc, {n_mem:,} entries: "
        "entry, features as a shared names tuple + a float array, probabilities, the index "
        f"and the arrival queue); keeping the parsed features dict instead would cost "
        f"{per_dict:,.0f} bytes for the features alone.",
        "",
        f"A checkpoint interval here is {INTERVAL:,} new unlabelled events and {INTERVAL:,} "
        "labels learned (`DRIFTLINE_CHECKPOINT_EVERY` = 1,000): the delta is about 3,000 "
        "fields whatever the store's size. The full write is the first checkpoint after an "
        "assignment without a restored hash (or after a refused write); every other "
        "checkpoint writes the delta.",
        "",
        "| pending | full write: size | seal + sign | Redis script | delta: fields | size "
        "| seal + sign | Redis script | restore | Redis memory |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['full_bytes'] / mib:,.1f} MiB | {r['seal_full']:.2f} s "
            f"| {r['write_full']:.2f} s | {r['delta_fields']:,} | "
            f"{r['delta_bytes'] / 1024:,.0f} KiB | {r['seal_delta'] * 1000:.1f} ms | "
            f"{r['write_delta'] * 1000:.1f} ms | {r['restore']:.2f} s "
            f"| {r['redis_bytes'] / mib:,.0f} MiB |")
    lines += [
        "",
        "The learner blob itself (a logistic regression) is a few KiB and is written with "
        "either. Restore is paid once per assignment (in the restore task, verification in a "
        "thread); it verifies a MAC and decodes one JSON value per field, so it grows with "
        "the store.",
        END,
    ]
    return "\n".join(lines) + "\n"


def save(section: str) -> None:
    text = DOC.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--memory-entries", type=int, default=100_000)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    per_entry, per_dict = memory_per_entry(args.memory_entries)
    server = RedisServer.create(Path(tempfile.mkdtemp(prefix="driftline-fb-")) / "redis",
                                appendonly=True)
    server.start(die_with_parent=True)
    try:
        rows = []
        for n in (int(s) for s in args.sizes.split(",")):
            rows.append(asyncio.run(measure(server.url, n)))
            print(rows[-1], flush=True)
    finally:
        server.stop()
    section = render(rows, per_entry, per_dict, args.memory_entries)
    print(section)
    if not args.no_save:
        save(section)


if __name__ == "__main__":
    main()
