"""Throughput of the real worker with late labels vs labels inline, measured in one run.

The same events (10 numeric features, the default model) go through a Driftline worker
process twice per round, on fresh topics of one partition: once with the label inside
each event (test-then-train), once without it and the label on ``<prefix>feedback``
``--delay`` events later (every event gets exactly one label, so every prediction waits
in the pending store, is joined and learned). Records carry explicit timestamps (10 ms
per event) and a last event comes after every label, so its prediction is the end of
the run in both variants. Rounds alternate the variants, so drift in the shared machine
hits both alike. Throughput is events per second between the first and the last
prediction acknowledged by the broker (LogAppendTime), as in ``./dev bench``; the
feedback run also processes one feedback record per event.

Run: ``.venv/bin/python -m bench.feedback_throughput [--events 20000] [--rounds 2]``
(starts its own Kafka broker and redis-server; about two minutes). Writes the marked
section ``feedback-throughput`` of ``docs/benchmarks.md``; ``./dev bench`` runs it as one
of its steps and rewrites the section.
"""

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import measure
from bench.report import REPORT, splice
from bench.runs import Env
from bench.workload import create_topics, make_events, send_all
from streams.localservices.kafka import KafkaBroker
from streams.localservices.redis import RedisServer
from streams.localservices.workers import WorkerProcess, worker_env

SECTION = "feedback-throughput"
STEP_MS = 10
#: (topic suffix, key, value, timestamp ms)
Plan = list[tuple[str, bytes, bytes, int]]


def plans(n: int, delay: tuple[int, int], seed: int = 7) -> tuple[Plan, Plan]:
    """(labels inline, labels late): ``n`` events plus a last one after every label."""
    rng = random.Random(seed)
    t0 = (int(time.time()) - 3600) * 1000  # within the broker's retention
    inline: Plan = []
    late: Plan = []
    for i, raw in enumerate(make_events(n)):
        event = orjson.loads(raw)
        key, at = event["event_id"].encode(), t0 + STEP_MS * i
        inline.append(("events", key, raw, at))
        label = event.pop("label")
        late.append(("events", key, orjson.dumps(event), at))
        late.append(("feedback", key, orjson.dumps(
            {"event_id": event["event_id"], "model": "default", "label": label}),
            at + STEP_MS * rng.randint(*delay) + 5))
    end = t0 + STEP_MS * (n + delay[1] + 1)
    last = orjson.dumps({"event_id": "last", "model": "default", "features": {"x0": 0.0}})
    for plan in (inline, late):
        plan.append(("events", b"last", last, end))
        plan.sort(key=lambda r: (r[3], r[0] != "events"))
    return inline, late


async def _send(bootstrap: str, prefix: str, plan: Plan) -> None:
    await send_all(bootstrap, ({"topic": f"{prefix}{suffix}", "value": value, "key": key,
                                "partition": 0, "timestamp_ms": at}
                               for suffix, key, value, at in plan))


def _models(port: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=5) as response:
        return orjson.loads(response.read())  # type: ignore[no-any-return]


def one_run(env: Env, name: str, plan: Plan, timeout: float = 300) -> dict[str, Any]:
    """One worker over ``plan`` on fresh topics: rate, seconds, peak RSS, learned."""
    prefix = env.prefix(name)
    events = sum(1 for r in plan if r[0] == "events")
    asyncio.run(create_topics(env.bootstrap, {
        f"{prefix}{t}": 1 for t in ("events", "feedback", "predictions", "alerts",
                                    "deadletter", "incidents")},
        append_time=(f"{prefix}predictions",)))
    asyncio.run(_send(env.bootstrap, prefix, plan))
    settings = worker_env(env.bootstrap, env.redis_url, prefix, env.tmp / prefix)
    worker = WorkerProcess(settings, env.tmp / f"{prefix}.log").start()
    try:
        asyncio.run(measure.wait_count(env.bootstrap, f"{prefix}predictions", events,
                                       timeout, worker.alive))
        rss = measure.peak_rss_mib(worker.proc.pid) if worker.proc else float("nan")
        view = _models(settings["DRIFTLINE_WEB_PORT"])["default"]["0"]
    finally:
        worker.stop()
    span = asyncio.run(measure.span(env.bootstrap, f"{prefix}predictions"))
    return {"name": name, "events": span.count, "records": len(plan),
            "seconds": (span.last_ms - span.first_ms) / 1000.0, "rate": span.rate,
            "peak_rss_mib": rss, "learned": view["version"],
            "feedback": view["feedback"]["totals"]}


def run(env: Env, n: int, rounds: int, delay: tuple[int, int]) -> dict[str, Any]:
    """Alternate inline / late runs ``rounds`` times."""
    inline, late = plans(n, delay)
    out: dict[str, Any] = {"events": n, "delay": list(delay), "inline": [], "late": []}
    for i in range(rounds):
        for variant, plan in (("inline", inline), ("late", late)):
            result = one_run(env, f"fb{variant}{i}", plan)
            print(f"  {variant} #{i + 1}: {result}", flush=True)
            out[variant].append(result)
    out["date"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    out["load"] = os.getloadavg()[0]
    return out


def render(out: dict[str, Any]) -> str:
    """The marked section's body."""
    inline = statistics.median(r["rate"] for r in out["inline"])
    late = statistics.median(r["rate"] for r in out["late"])
    lo, hi = out["delay"]
    lines = [
        "## Late labels: throughput with feedback vs labels inline",
        "",
        f"Measured by `python -m bench.feedback_throughput` on {out['date']} (Python "
        f"{platform.python_version()}, a real Kafka broker and redis-server started by the "
        f"bench, one worker process, one partition, checkpoints on; shared 2-core machine, "
        f"1-minute load average {out['load']:.1f} at the end). {out['events']:,} events of 10 "
        "numeric features, the default model; inline: each event carries its label; late: "
        f"no label in the event, one feedback record per event {lo:,} to {hi:,} events later "
        "(every prediction waits in the pending store, is joined and learned from the stored "
        "features). Events per second between the first and the last prediction acknowledged "
        "by the broker; variants alternated, medians of the rounds.",
        "",
        "| labels | events/s (each round) | median | relative | records/s | peak RSS | "
        "learned |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, median in (("inline", inline), ("late", late)):
        runs = out[variant]
        records = statistics.median(r["records"] / r["seconds"] for r in runs)
        each = ", ".join(f"{r['rate']:,.0f}" for r in runs)
        lines.append(
            f"| {variant} | {each} | "
            f"**{median:,.0f}** | {median / inline:.2f} | {records:,.0f} | "
            f"{max(r['peak_rss_mib'] for r in runs):,.0f} MiB | "
            f"{runs[-1]['learned']:,} |")
    lines += [
        "",
        "The late run does more per event: it also consumes, validates and merges a feedback "
        "record, keeps a pending entry (features packed, probabilities), joins it, and its "
        "checkpoints write the pending hash's changes (about three fields per event, each "
        "signed: see the pending store's delta timings above).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--delay", default="50:2000", help="MIN:MAX events")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    lo, hi = (int(v) for v in args.delay.split(":"))
    tmp = Path(tempfile.mkdtemp(prefix="driftline-fbtp-"))
    broker = KafkaBroker.create(tmp / "kafka")
    broker.start(die_with_parent=True)
    redis = RedisServer.create(tmp / "redis", appendonly=True)
    redis.start(die_with_parent=True)
    try:
        out = run(Env(broker.bootstrap, redis.url, tmp), args.events, args.rounds, (lo, hi))
    finally:
        redis.stop()
        broker.stop()
    body = render(out)
    print(json.dumps(out, indent=2, default=str))
    print(body)
    if not args.no_save:
        REPORT.write_text(splice(REPORT.read_text(), SECTION, body))


if __name__ == "__main__":
    main()
