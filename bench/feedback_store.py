"""Cost of the late-label pending store: memory per entry, full vs incremental
checkpoint writes to a real redis-server, restore.

Run: ``.venv/bin/python -m bench.feedback_store [--sizes 10000,100000,1000000]``.
Starts its own redis-server (AOF on, as the worker's), writes the section between
the markers in ``docs/benchmarks.md`` and prints it.
"""

import argparse
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
import redis

from learners.checkpoint import Where
from learners.feedback import PendingPredictions, Received
from learners.feedback_codec import FeedbackCodec, PendingSummary
from streams.localservices.redis import RedisServer

BEGIN, END = "<!-- feedback-store:begin -->", "<!-- feedback-store:end -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
WHERE = Where("bench", "bench.events", 0, "default")
CHUNK = 10_000
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


def write(client: redis.Redis, key: str, hset: dict[bytes, bytes], hdel: list[bytes],
          replace: bool) -> float:
    """One MULTI/EXEC (as the checkpoint's own transaction would be); seconds."""
    started = time.perf_counter()
    with client.pipeline(transaction=True) as pipe:
        if replace:
            pipe.delete(key)
        items = list(hset.items())
        for i in range(0, len(items), CHUNK):
            pipe.hset(key, mapping=dict(items[i:i + CHUNK]))
        for i in range(0, len(hdel), CHUNK):
            pipe.hdel(key, *hdel[i:i + CHUNK])
        pipe.execute()
    return time.perf_counter() - started


def measure(client: redis.Redis, n: int) -> dict[str, float]:
    rng = random.Random(n)
    codec = FeedbackCodec(b"k" * 32, WHERE)
    store = PendingPredictions(10**12, 60_000, 10**7)
    fill(store, n, rng)
    key = f"driftline:pending:bench:{n}"
    started = time.perf_counter()
    full = codec.seal_all(store.fields(), n)
    seal_full = time.perf_counter() - started
    store.changes_since_last_checkpoint()
    write_full = write(client, key, full.hset, [], replace=True)
    # One checkpoint interval: INTERVAL new events, INTERVAL oldest ones labelled.
    fill(store, INTERVAL, rng, start=n)
    for i in range(INTERVAL):
        store.match(f"ev-{i}", True, Received(i, None, b"{}", n + INTERVAL), n + INTERVAL)
    started = time.perf_counter()
    delta = codec.seal_delta(store.changes_since_last_checkpoint(), full.summary, n + INTERVAL)
    seal_delta = time.perf_counter() - started
    write_delta = write(client, key, delta.hset, delta.hdel, replace=False)
    del full
    gc.collect()
    started = time.perf_counter()
    stored = dict(client.hscan_iter(key, count=CHUNK))
    fetched = time.perf_counter() - started
    restored = PendingPredictions(10**12, 60_000, 10**7)
    codec.restore(stored, delta.summary, restored)
    restore = time.perf_counter() - started
    assert restored.entries == store.entries and restored.learned == store.learned
    redis_bytes = int(client.memory_usage(key, samples=0) or 0)
    full_bytes = sum(len(k) + len(v) for k, v in stored.items())
    client.delete(key)
    return {"n": n, "full_bytes": full_bytes, "seal_full": seal_full, "write_full": write_full,
            "delta_fields": len(delta.hset) + len(delta.hdel), "delta_bytes": delta.nbytes,
            "seal_delta": seal_delta, "write_delta": write_delta, "fetch": fetched,
            "restore": restore, "redis_bytes": redis_bytes, "summary": PendingSummary.empty().count}


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
        "classifier's prediction and probabilities.",
        "",
        f"Memory: **{per_entry:,.0f} bytes per pending entry** (tracemalloc, {n_mem:,} entries: "
        "entry, features as a shared names tuple + a float array, probabilities, the index "
        f"and the arrival queue); keeping the parsed features dict instead would cost "
        f"{per_dict:,.0f} bytes for the features alone.",
        "",
        f"A checkpoint interval here is {INTERVAL:,} new unlabelled events and {INTERVAL:,} "
        "labels learned (`DRIFTLINE_CHECKPOINT_EVERY` = 1,000): the delta is about 3,000 "
        "fields whatever the store's size.",
        "",
        "| pending | full write: size | sign | Redis MULTI | delta: fields | size | sign "
        "| Redis MULTI | restore (HSCAN + verify + load) | Redis memory |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['full_bytes'] / mib:,.1f} MiB | {r['seal_full']:.2f} s "
            f"| {r['write_full']:.2f} s | {r['delta_fields']:,} | "
            f"{r['delta_bytes'] / 1024:,.0f} KiB | {r['seal_delta'] * 1000:.1f} ms | "
            f"{r['write_delta'] * 1000:.1f} ms | {r['restore']:.2f} s "
            f"(fetch {r['fetch']:.2f} s) | {r['redis_bytes'] / mib:,.0f} MiB |")
    lines += [
        "",
        "The incremental write is what every checkpoint pays; the full write is what writing "
        "the whole store each time would cost (and what a first write or a repair costs). "
        "Restore is paid once per assignment; it verifies two MACs and decodes one JSON "
        "value per field, so it grows with the store.",
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
        client = redis.Redis.from_url(server.url, socket_timeout=900)
        rows = []
        for n in (int(s) for s in args.sizes.split(",")):
            rows.append(measure(client, n))
            print(rows[-1], flush=True)
        client.close()
    finally:
        server.stop()
    section = render(rows, per_entry, per_dict, args.memory_entries)
    print(section)
    if not args.no_save:
        save(section)


if __name__ == "__main__":
    main()
