"""Why an unmet target of issue 16 is not met: one line per target, built from the same
run's numbers and its py-spy profile (``out["profile"]``, :func:`bench.profile.summarise`),
pointing to the section of docs/benchmarks.md that measures the cause.

>>> out = {"driftline": {"rate": 20_000.0}, "aiokafka": {"rate": 25_000.0},
...        "in_process": 60_000.0, "profile": {"us_per_event": 50.0, "stages": [
...            {"stage": "learn", "us_per_event": 15.0}, {"stage": "predict", "us_per_event": 5.0},
...            {"stage": "fetch", "us_per_event": 10.0}]}}
>>> print(explain("Driftline >= 0.5x River in-process, default model", out))
the plain aiokafka loop alone reaches 0.42x River in-process in this run: what a Kafka \
consumer pays per event (fetch, JSON, produce) is more than the model's work; profile: the \
model 20.0 of 50.0 µs per event (40%), fetch 10.0 µs (see "Where a worker's time goes")
>>> explain("peak RSS per worker (reported)", out) is None
True
"""

from typing import Any

#: Profile stages that are the River model's own work (the rest is the service's).
MODEL_STAGES = ("learn", "predict", "ADWIN")


def _stages(out: dict[str, Any]) -> dict[str, float]:
    return {s["stage"]: s["us_per_event"] for s in out.get("profile", {}).get("stages", [])}


def _profile(out: dict[str, Any], top: int = 3) -> str:
    """The model's part of the profiled worker's µs per event and the largest service
    stages, or "" without a profile."""
    prof = out.get("profile")
    if not prof:
        return ""
    stages = _stages(out)
    model = sum(stages.get(s, 0.0) for s in MODEL_STAGES)
    total = prof["us_per_event"]
    service = sorted(((us, s) for s, us in stages.items() if s not in MODEL_STAGES),
                     reverse=True)[:top]
    return (f"; profile: the model {model:.1f} of {total:.1f} µs per event "
            f"({model / total:.0%}), " + ", ".join(f"{s} {us:.1f} µs" for us, s in service)
            + ' (see "Where a worker\'s time goes")')


def d_rate(out: dict[str, Any]) -> float:
    """Driftline's events/s in this run (0 when not measured)."""
    return float(out.get("driftline", {}).get("rate", 0.0))


def explain(target: str, out: dict[str, Any]) -> str | None:
    """Why ``target`` (its text in :func:`bench.report.targets`) is not met, or None when
    there is nothing to explain (reported-only rows, unknown targets)."""
    b = out.get("aiokafka", {})
    if target.startswith("Driftline >= 1.0x the plain aiokafka loop"):
        return ("the worker does more per event than the loop: validation with pydantic, "
                "learner bookkeeping (atomic step, metric, drift watch), dead-letter and "
                "late-label checks, checkpoints" + _profile(out)
                + '; instruction counts per part: "Where a scored event\'s instructions go"')
    if target.startswith("Driftline >= 0.5x River in-process"):
        plain = b["rate"] / out["in_process"]
        return (f"the plain aiokafka loop alone reaches {plain:.2f}x River in-process in this "
                "run: what a Kafka consumer pays per event (fetch, JSON, produce) is more "
                "than the model's work" + _profile(out))
    if target.startswith("Driftline >= 0.8x River in-process"):
        model = target.rsplit(", ", 1)[-1]
        row = next((r for r in out.get("models", []) if r["model"] == model), None)
        if row is None:
            return None
        model_us = 1e6 / row["in_process"]
        plain = 1e6 / b["rate"] - 1e6 / out["in_process"]
        return (f"0.8x leaves the service {model_us / 4:.0f} µs per event next to the model's "
                f"{model_us:.0f} µs; it adds {1e6 / row['rate'] - model_us:.0f} µs, and the "
                f"plain aiokafka loop alone spends {plain:.0f} µs per event outside the model "
                "in this run (default model)" + _profile(out, top=2))
    if target.startswith("checkpoints on / off"):
        share = next((st["share"] for st in out.get("profile", {}).get("stages", [])
                      if st["stage"] == "checkpoint"), None)
        pairs = [p["on"] / p["off"] for p in out.get("checkpoint_pairs", [])]
        spread = f"; the pairs spread {min(pairs):.2f}-{max(pairs):.2f}" if pairs else ""
        cost = f"{share:.1%} of the profiled worker's time" if share is not None else "time"
        return (f"a checkpoint every 1,000 events (~{d_rate(out) / 1000:.0f} per second at "
                f"full speed) costs {cost} (pickle, HMAC, zstd, the Redis write on the "
                "same event loop), and a snapshot pickled on the loop (below 256 KiB) "
                "slows the live learner after it: +4.9% instructions per event on 3.11, "
                "+1.3% on 3.13 (\"Python version\"); this run: Python "
                f"{out.get('machine', {}).get('python', '?')}{spread}")
    if target.startswith("restored learner"):
        return ("a fresh learner's dictionaries hold the very feature-name objects the event "
                "parser hands out (pydantic's string cache), a restored one's held equal but "
                "new strings, so each River look-up compared characters: +8.2% instructions "
                "per step (logistic regression, callgrind); restored learners now take the "
                "parser's objects (Learner.share_strings): +2.4%; the rest of the CPU-time "
                "ratio moves by several % between runs on this shared machine (\"Python "
                "version\")")
    if target.startswith("p99 produce-to-prediction"):
        return ("the tail is the shared machine: the slowest 1% of events overlapped a "
                "stretch where the worker's loop waited for a CPU (broker, bench driver and "
                "worker on 2 cores; \"Latency at 2,000 events/s: where it goes\")")
    if target.startswith("kill -9") and "--supervise" in target:
        return ("the supervised worker's new child still builds the Faust app, checks Kafka "
                "and Redis, rejoins the group and restores before its first slice (phases: "
                "\"kill -9 to first prediction\", `python -m bench.restart_phases`)")
    if target.startswith("kill -9"):
        return ("a new process pays its imports first (river with scipy.stats, faust, "
                "aiohttp, aiokafka: ~1.4 s of CPU here, \"Why <= 1 s is not reachable with "
                "a new process\")")
    if target.startswith("no RSS growth"):
        return ("the resident set grew over the soak: the samples (every 10 s) are in "
                "bench/results/latest.json (`soak`); a tracemalloc comparison of two "
                "snapshots of the worker names what holds the memory")
    if target.startswith("issue 10"):
        return ("two runs on different days compare different machine loads; the same-run "
                "comparison with the earlier checkout is `python -m bench.before` (\"This "
                "worker against last round's, same run\")")
    return None
