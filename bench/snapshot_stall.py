"""Snapshot levers: event-loop stall, speed of live learners after snapshots, codec.

Run: ``.venv/bin/python -m bench.snapshot_stall [--sizes 100000,1000000] [--write]``.

For each size, one ``StandardScaler | LogisticRegression`` learner fed 5,000 new feature
names per event (``max_features`` raised), as the hardening tests do; then:

* stall: the longest gap of a 1 ms ticker on the event loop while one snapshot is taken
  (inline pickle on the loop; in ``asyncio.to_thread``; forked child), and its wall time;
* codec: pickle size and time, zstd level 1/3 size and time, decompression time;
* speed: µs per predict+learn (CPU time) of one 10-feature default learner before and
  after 20 snapshots, none / inline / forked, interleaved, 11 rounds;
* ``--restore N``: a checkpoint of N features (1,500,000: ~100 MB pickled) written to and
  restored from a real redis-server (``CheckpointStore.save`` / ``restore``), timed by step.

``--write`` puts the tables between the ``snapshot-levers`` markers of docs/benchmarks.md.
"""

import argparse
import asyncio
import platform
import random
import tempfile
import time
from pathlib import Path

import cramjam
import redis.asyncio

from bench.report import splice
from learners import checkpoint, safe_pickle
from learners.checkpoint import Where
from learners.learner import Learner
from schemas.models_file import ModelSpec
from streams.checkpoint_store import CheckpointStore
from streams.localservices.redis import RedisServer
from streams.snapshot import Forked

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
WHERE = Where("bench", "bench.events", 0, "m")
KEY = b"k" * 32
PIPELINE = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"
CONCLUSION = (
    "Chosen: the forked child (`DRIFTLINE_CHECKPOINT_SNAPSHOT=fork`). The loop's longest stal"
    'l is the `fork()` (page tables, growing with RSS), 10-50x below pickling on the loop and'
    ' well below a thread (pickling holds the GIL, so a thread still stalls the loop for most'
    ' of the pickle at 1,000,000 features); a live learner is never pickled, so it stays at t'
    'he noise floor after snapshots, where inline pickling leaves it ~11 % slower for good (C'
    'Python 3.11 materialises `__dict__`). The cost is wall time and memory in the child (pic'
    'kle + zstd + HMAC run there; the pages it touches are copied). Not chosen: incremental/c'
    'hunked snapshots (a River model is one object graph: no safe cut points without River ch'
    'anges) and `copy.deepcopy` then pickle (measured once: the deep copy alone took 0.56-0.6'
    '6 s at 100,000 features, against 0.13-0.34 s for the whole dump, on the loop, and it tou'
    'ches every live object). zstd level 3 (written) vs 1: 10-20 % smaller for ~2x the compre'
    'ssion time, which the child pays, not the loop.')


def wide_learner(features: int) -> Learner:
    spec = ModelSpec(task="classification", pipeline=PIPELINE, max_features=features + 10)
    learner = Learner.from_spec(spec, cooldown=100)
    rng = random.Random(1)
    for event in range(features // 5_000):
        x = {f"f{event}_{k}": rng.random() for k in range(5_000)}
        learner.step(x, rng.random() < 0.5)
    return learner


async def stall(take) -> tuple[float, float]:
    """(longest ticker gap, wall time) while ``take()`` (a coroutine) runs."""
    gaps, done = [0.0], asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps[0] = max(gaps[0], now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    start = time.perf_counter()
    await take()
    wall = time.perf_counter() - start
    done.set()
    await tick
    return gaps[0], wall


def dump(learner: Learner) -> bytes:
    return checkpoint.dump(learner, WHERE, 1, KEY, 0.0)


async def stalls(learner: Learner) -> dict[str, tuple[float, float, float, float]]:
    """Per way of snapshotting: (median, min, max) longest stall of 5 and median wall."""
    async def inline() -> None:
        dump(learner)

    async def thread() -> None:
        await asyncio.to_thread(dump, learner)

    async def fork() -> None:
        await Forked(lambda: dump(learner)).result()

    out = {}
    for name, take in (("inline (on the loop)", inline), ("asyncio.to_thread", thread),
                       ("forked child", fork)):
        runs = [await stall(take) for _ in range(5)]
        gaps = sorted(g for g, _ in runs)
        out[name] = (gaps[2], gaps[0], gaps[-1], sorted(w for _, w in runs)[2])
    return out


def fork_cost(n: int = 5) -> float:
    """Median seconds of ``os.fork()`` in the parent (child exits at once)."""
    import os
    times = []
    for _ in range(n):
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        times.append(time.perf_counter() - start)
        os.waitpid(pid, 0)
    return sorted(times)[n // 2]


def codec(learner: Learner) -> dict[str, float]:
    start = time.perf_counter()
    pickled = safe_pickle.dumps(learner)
    out = {"pickle_s": time.perf_counter() - start, "raw": len(pickled)}
    for level in (1, 3):
        start = time.perf_counter()
        packed = bytes(cramjam.zstd.compress(pickled, level=level))
        out[f"z{level}_s"], out[f"z{level}"] = time.perf_counter() - start, len(packed)
        start = time.perf_counter()
        cramjam.zstd.decompress_into(packed, bytearray(len(pickled)))
        out[f"d{level}_s"] = time.perf_counter() - start
    return out


def speed(snapshots: int = 20, rounds: int = 11) -> dict[str, tuple[float, float, float]]:
    """Per way of snapshotting: (best µs per event before, best after ``snapshots``
    snapshots, median of the rounds' after/before ratios), the same learner object timed
    before and after (fresh learners each round; "none" is the noise floor)."""
    spec = ModelSpec(task="classification", pipeline=PIPELINE)
    rng = random.Random(2)
    data = [({f"x{k}": rng.random() for k in range(10)}, rng.random() < 0.5)
            for _ in range(10_000)]

    def run(made: Learner) -> float:
        start = time.process_time()
        for x, y in data:
            made.step(x, y)
        return (time.process_time() - start) / len(data) * 1e6

    def snap(how: str, made: Learner) -> None:
        for _ in range(snapshots if how != "none" else 0):
            if how == "inline":
                dump(made)
            else:
                asyncio.run(Forked(lambda m=made: dump(m)).result())

    times: dict[str, list[tuple[float, float]]] = {"none": [], "inline": [], "forked": []}
    for _ in range(rounds):
        for how, got in times.items():
            made = Learner.from_spec(spec, cooldown=1000)
            before = run(made)
            snap(how, made)
            got.append((before, run(made)))
    return {how: (min(b for b, _ in got), min(a for _, a in got),
                  sorted(a / b for b, a in got)[len(got) // 2]) for how, got in times.items()}


async def restore_steps(learner: Learner, url: str) -> dict[str, float]:
    """Seconds of each step of writing and restoring ``learner``'s checkpoint."""
    client = redis.asyncio.Redis.from_url(url, socket_timeout=600)
    store = CheckpointStore(client, KEY, 5, WHERE.group, WHERE.topic)
    out: dict[str, float] = {}
    started = time.perf_counter()
    blob = checkpoint.dump(learner, store.where(0, "m"), 1, KEY, 0.0)
    out["dump"] = time.perf_counter() - started
    header, stored = checkpoint.verify(blob, KEY)
    out["pickle_mb"], out["blob_mb"] = header.size / 1e6, len(blob) / 1e6
    started = time.perf_counter()
    await store.save(0, {"m": (1, blob)})
    out["write"] = time.perf_counter() - started
    started = time.perf_counter()
    await client.lindex(store.versions_key(0, "m"), 0)
    out["read"] = time.perf_counter() - started
    started = time.perf_counter()
    checkpoint.verify(blob, KEY)
    out["verify"] = time.perf_counter() - started
    started = time.perf_counter()
    checkpoint.decompress(header, stored)
    out["decompress"] = time.perf_counter() - started
    started = time.perf_counter()
    found = await store.restore(0, ("m",))
    out["restore"] = time.perf_counter() - started
    assert found.learners["m"][1].n_learned == learner.n_learned
    await client.aclose()
    return out


def restore_line(features: int) -> str:
    server = RedisServer.create(Path(tempfile.mkdtemp(prefix="driftline-snap-")) / "redis",
                                appendonly=True)
    server.start(die_with_parent=True)
    try:
        r = asyncio.run(restore_steps(wide_learner(features), server.url))
    finally:
        server.stop()
    return (f"**Restore of a {r['pickle_mb']:.0f} MB checkpoint ({features:,} features; "
            f"{r['blob_mb']:.1f} MB stored with zstd).** dump (pickle + zstd + sign) "
            f"{r['dump']:.2f} s, Redis write {r['write']:.2f} s, read (`LINDEX`) "
            f"{r['read']:.2f} s, HMAC verify {r['verify']:.2f} s, decompress "
            f"{r['decompress']:.2f} s; full `CheckpointStore.restore` (read, verify, "
            f"decompress, allow-list unpickle) {r['restore']:.1f} s.")


def render(sizes: list[int], restore: int = 0) -> str:
    lines = [f"Python {platform.python_version()}, shared 2-core machine (other jobs running: "
             "absolute times noisy). `python -m bench.snapshot_stall`.", "",
             "| features | snapshot | longest loop stall: median of 5 (min-max) | "
             "wall (median) |", "|---|---|---|---|"]
    codecs, forks = [], []
    for n in sizes:
        learner = wide_learner(n)
        for name, (mid, lo, hi, wall) in asyncio.run(stalls(learner)).items():
            lines.append(f"| {n:,} | {name} | {mid * 1e3:,.0f} ms ({lo * 1e3:,.0f}-"
                         f"{hi * 1e3:,.0f}) | {wall:.2f} s |")
        forks.append((n, fork_cost()))
        codecs.append((n, codec(learner)))
        del learner
    lines += ["", "`os.fork()` itself in the parent (median of 5): " + ", ".join(
        f"{t * 1e3:.1f} ms at {n:,} features" for n, t in forks) + ".", "",
        "| features | pickle | time | zstd 1 | time | zstd 3 (written) | time | decompress (3) |",
        "|---|---|---|---|---|---|---|---|"]
    for n, c in codecs:
        lines.append(f"| {n:,} | {c['raw'] / 1e6:.1f} MB | {c['pickle_s']:.2f} s | "
                     f"{c['z1'] / 1e6:.1f} MB ({c['raw'] / c['z1']:.1f}x) | {c['z1_s']:.2f} s | "
                     f"{c['z3'] / 1e6:.1f} MB ({c['raw'] / c['z3']:.1f}x) | {c['z3_s']:.2f} s | "
                     f"{c['d3_s']:.2f} s |")
    lines += ["", "Live learner (10 features, default model), the same object timed over 10,000 "
              "events before and after 20 snapshots (none: the noise floor):", "",
              "| snapshots | µs per predict+learn before | after | after / before "
              "(median of 11) |", "|---|---|---|---|"]
    lines += [f"| {how} | {b:.1f} | {a:.1f} | {r:.3f} |" for how, (b, a, r) in speed().items()]
    lines += ["", CONCLUSION]
    if restore:
        lines += ["", restore_line(restore)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--restore", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    body = render([int(s) for s in args.sizes.split(",") if s], args.restore)
    print(body)
    if args.write:
        DOC.write_text(splice(DOC.read_text(), "snapshot-levers",
                                       "## Snapshot levers: loop stall, live speed, codec\n\n"
                                       + body))


if __name__ == "__main__":
    main()
