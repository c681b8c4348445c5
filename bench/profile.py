"""A py-spy profile of one worker at full speed: top frames and µs per event by stage.

The events are produced first; the worker then starts under py-spy (sampling its threads
at ``RATE`` Hz, idle ones left out) and the profile runs until every prediction is out;
samples before the first batch (start-up, restore) are left out. Each sample is
charged to one stage by the innermost frame that names one (:data:`STAGES`, checked in
order), so nested work (ADWIN inside ``Learner.step``) counts once, under the most specific
stage. µs per event = sampled seconds / events: wall time of a busy thread, so on a
loaded machine it includes time the worker waited for a core.

Run: ``python -m bench.profile [--events N]``; needs ``py-spy`` (``pip install py-spy``).
"""

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RATE = 250
ROOT = Path(__file__).resolve().parent.parent
#: stage -> markers ("function (file" prefixes of py-spy's raw frames); first match wins,
#: innermost frame first.
STAGES: dict[str, tuple[str, ...]] = {
    "ADWIN": ("update (learners/drift.py", "update (river/drift/"),
    "checkpoint": ("learners/checkpoint.py", "learners/safe_pickle.py", "streams/checkpointer",
                   "streams/checkpoint_store.py", "redis/"),
    "predict": ("_predict (learners/learner.py",),
    "learn": ("_learn_plain (learners/learner.py", "_learn (learners/learner.py",
              "_learn_one (learners/learner.py", "learn_one (river/"),
    "pre-check (atomicity)": ("_check (learners/learner.py", "_check_slow (learners/learner.py",
                              "_finite (learners/learner.py"),
    "step (rest)": ("step (learners/learner.py", "_learn_and_watch (learners/learner.py",
                    "observe_loss (learners/learner.py"),
    "decode+validate": ("model_validate_json", "schemas/event.py"),
    "encode": ("_serialise (streams/processor.py",),
    "process (rest)": ("streams/processor.py",),
    "produce": ("streams/output.py", "aiokafka/producer", "aiokafka/record/default_records",
                "aiokafka/record/_crecords", "aiokafka/record/memory_records"),
    "metrics": ("streams/metrics.py", "prometheus_client/"),
    "fetch": ("aiokafka/consumer", "aiokafka/record", "getmany", "streams/scoring.py"),
    "kafka client (network, metadata)": ("aiokafka/",),
    "event loop": ("asyncio/",),
}


def stage_of(stack: list[str]) -> str:
    """The stage of one sample (frames root first).

    >>> stage_of(["run (streams/scoring.py:1)", "_one (streams/processor.py:2)",
    ...           "update (learners/drift.py:3)"])
    'ADWIN'
    >>> stage_of(["select (selectors.py:1)"])
    'other'
    """
    for frame in reversed(stack):
        for stage, markers in STAGES.items():
            if any(m in frame for m in markers):
                return stage
    return "other"


def _short(path: str) -> str:
    """A source path relative to the repository or to site-packages.

    >>> _short("/x/.venv/lib/python3.11/site-packages/river/drift/adwin.py")
    'river/drift/adwin.py'
    """
    for marker in ("site-packages/", f"{ROOT}/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return re.sub(r".*/lib/python3\.\d+/", "", path)


def _frame_name(frame: str) -> str:
    """``function (path:line)`` without the line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})"


def summarise(stacks: list[tuple[list[str], float]], events: int) -> dict[str, Any]:
    """Stages (µs per event, share) and the top frames of ``(stack, seconds)`` samples
    (frames root first).

    >>> r = summarise([(["_one (streams/processor.py:1)"], 0.5),
    ...                (["select (selectors.py:1)"], 0.5)], events=1000)
    >>> r["us_per_event"], [(s["stage"], s["us_per_event"]) for s in r["stages"]]
    (1000.0, [('process (rest)', 500.0), ('other', 500.0)])
    """
    stages: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0.0
    for stack, seconds in stacks:
        if not stack:
            continue
        total += seconds
        stages[stage_of(stack)] += seconds
        own[_frame_name(stack[-1])] += seconds
    us = 1e6 / max(1, events)
    return {
        "events": events, "seconds": total, "rate_hz": RATE,
        "us_per_event": total * us,
        "stages": [{"stage": s, "us_per_event": t * us, "share": t / (total or 1.0)}
                   for s, t in stages.most_common()],
        "top_self": [{"frame": f, "share": t / (total or 1.0)}
                     for f, t in own.most_common(15)],
    }


def from_first(speedscope: dict[str, Any], marker: str = "process_batch") -> list[
        tuple[list[str], float]]:
    """The samples of a py-spy speedscope profile from the first one whose stack has a
    frame named ``marker`` on (start-up left out), as ``(frames root first, seconds)``."""
    frames = [f"{f['name']} ({_short(f.get('file') or '?')}:{f.get('line') or 0})"
              for f in speedscope["shared"]["frames"]]
    out: list[tuple[list[str], float]] = []
    for prof in speedscope["profiles"]:
        started = False
        for sample, weight in zip(prof["samples"], prof["weights"], strict=True):
            stack = [frames[i] for i in sample]
            started = started or any(f"{marker} (" in f for f in stack)
            if started:
                out.append((stack, float(weight)))
    return out


def render(p: dict[str, Any]) -> str:
    """The profile as markdown (one section of docs/benchmarks.md)."""
    lines = [
        f"py-spy at {p['rate_hz']} Hz on one worker (default model, 1 partition, "
        f"checkpoints on) over {p['events']:,} events: {p['seconds']:.1f} s of busy "
        f"threads sampled, {p['us_per_event']:.1f} µs per event in all (wall time of a busy "
        "thread: on a loaded machine it includes waiting for a core). "
        f"Load average at the start: {p.get('load', '?')}.",
        "",
        "| stage | µs per event | share |",
        "|---|---|---|",
    ]
    lines += [f"| {s['stage']} | {s['us_per_event']:.1f} | {s['share']:.1%} |"
              for s in p["stages"]]
    lines += ["", "Top frames by own time:", "", "| frame | share |", "|---|---|"]
    lines += [f"| `{f['frame']}` | {f['share']:.1%} |" for f in p["top_self"]]
    return "\n".join(lines)


def profile(events: int, tmp: Path) -> dict[str, Any]:
    """Run a worker under py-spy over ``events`` pre-produced events and summarise."""
    from bench import measure
    from bench.workload import create_topics, make_events, produce
    from streams.localservices.kafka import KafkaBroker
    from streams.localservices.redis import RedisServer
    from streams.localservices.workers import DRIFTLINE, worker_env

    tmp.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    broker = KafkaBroker.create(tmp / "kafka")
    broker.start(die_with_parent=True)
    redis = RedisServer.create(tmp / "redis", appendonly=True)
    redis.start(die_with_parent=True)
    prefix = "profile."
    asyncio.run(create_topics(broker.bootstrap, {f"{prefix}{t}": 1 for t in (
        "events", "predictions", "alerts", "deadletter")}))
    asyncio.run(produce(broker.bootstrap, f"{prefix}events", make_events(events)))
    settings = worker_env(broker.bootstrap, redis.url, prefix, tmp / "w")
    out = tmp / "profile.json"
    load = os.getloadavg()[0]
    with (tmp / "worker.log").open("wb") as log:
        spy_proc = subprocess.Popen(
            [spy, "record", "--rate", str(RATE), "--format", "speedscope", "--nonblocking",
             "-o", str(out), "--", DRIFTLINE, "worker"], env=settings, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        asyncio.run(measure.wait_count(broker.bootstrap, f"{prefix}predictions", events,
                                       600, lambda: spy_proc.poll() is None))
        spy_proc.send_signal(signal.SIGINT)  # py-spy writes its file and stops the worker
        spy_proc.wait(timeout=60)
    finally:
        if spy_proc.poll() is None:
            os.killpg(spy_proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(spy_proc.pid, signal.SIGTERM)  # the worker, if it outlived py-spy
        redis.stop()
        broker.stop()
    result = summarise(from_first(json.loads(out.read_text())), events)
    result["load"] = f"{load:.1f}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    from bench.report import REPORT, splice

    result = profile(args.events, Path(tempfile.mkdtemp(prefix="driftline-profile-")))
    text = render(result)
    print(text)
    REPORT.write_text(splice(REPORT.read_text(), "profile",
                             "## Where a worker's time goes (py-spy)\n\n" + text))
    (REPORT.parent.parent / "bench" / "results" / "profile.json").write_text(
        json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
