"""This worker against an earlier checkout's, in the same run (issue 10: "throughput not
lower than before", measured as a same-run ratio, not against another day's numbers).

Runs, alternated on one local broker and Redis, ``rounds`` times: this checkout's worker,
the earlier checkout's worker (its own ``.venv/bin/driftline``, built by its
``./dev bootstrap``), and the plain aiokafka loop; each over the same ``events``
pre-produced events (default model, one partition, checkpoints on). Reports the medians
and the median of the per-round ratios, and writes them to ``docs/benchmarks.md``
(section ``before``) and ``bench/results/before.json``.

Run: ``git worktree add --detach ../before <commit> && (cd ../before && ./dev bootstrap)``,
then ``python -m bench.before ../before``.
"""

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench import runs
from bench.report import splice
from bench.workload import make_events
from streams.localservices import workers
from streams.localservices.kafka import KafkaBroker
from streams.localservices.redis import RedisServer

ROOT = Path(__file__).resolve().parents[1]


def _driftline(env: runs.Env, name: str, values: list[bytes], command: str) -> float:
    """One Driftline run with the worker started from ``command``."""
    saved, workers.DRIFTLINE = workers.DRIFTLINE, command
    try:
        return runs.driftline(env, name, values).rate
    finally:
        workers.DRIFTLINE = saved


def compare(before: Path, events: int, rounds: int, tmp: Path) -> dict[str, object]:
    """Rates (events/s) per round of this worker, the earlier one and the plain loop."""
    old = before / ".venv" / "bin" / "driftline"
    if not old.exists():
        raise SystemExit(f"{old} not found: run ./dev bootstrap in {before} first")
    commit = subprocess.run(["git", "-C", str(before), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
    values = make_events(events)
    rates: dict[str, list[float]] = {"now": [], "before": [], "plain": []}
    broker = KafkaBroker.create(tmp / "kafka")
    broker.start(die_with_parent=True)
    redis = RedisServer.create(tmp / "redis", appendonly=True)
    redis.start(die_with_parent=True)
    try:
        env = runs.Env(broker.bootstrap, redis.url, tmp)
        for i in range(rounds):
            rates["now"].append(_driftline(env, f"now{i}", values, workers.DRIFTLINE))
            rates["before"].append(_driftline(env, f"before{i}", values, str(old)))
            rates["plain"].append(runs.plain_aiokafka(env, values).rate)
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()),
                  flush=True)
    finally:
        redis.stop()
        broker.stop()
    ratio = [n / b for n, b in zip(rates["now"], rates["before"], strict=True)]
    now_plain = [n / p for n, p in zip(rates["now"], rates["plain"], strict=True)]
    before_plain = [b / p for b, p in zip(rates["before"], rates["plain"], strict=True)]
    return {"before": commit, "events": events, "rounds": rounds, "rates": rates,
            "now_over_before": statistics.median(ratio),
            "now_over_plain": statistics.median(now_plain),
            "before_over_plain": statistics.median(before_plain)}


def section(r: dict[str, object]) -> str:
    """The markdown section of one comparison."""
    rates = r["rates"]
    assert isinstance(rates, dict)
    rows = "\n".join(
        f"| {i + 1} | {n:,.0f} | {b:,.0f} | {p:,.0f} | {n / b:.2f} |"
        for i, (n, b, p) in enumerate(zip(rates["now"], rates["before"], rates["plain"],
                                          strict=True)))
    return (f"## This worker against last round's, same run (issue 10)\n\n"
            f"`python -m bench.before` with last round's checkout ({r['before']}), "
            f"{r['events']:,} events, default model, one partition, checkpoints on, "
            f"{r['rounds']} alternated rounds on one broker.\n\n"
            "| round | this worker, events/s | last round's | plain aiokafka loop | "
            "this / last round's |\n|---|---|---|---|---|\n" + rows + "\n\n"
            f"Median of the per-round ratios: this / last round's **{r['now_over_before']:.2f}**;"
            f" this / plain loop {r['now_over_plain']:.2f}; last round's / plain loop "
            f"{r['before_over_plain']:.2f}.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="an earlier checkout, bootstrapped")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    r = compare(args.before.resolve(), args.events, args.rounds,
                Path(tempfile.mkdtemp(prefix="driftline-before-")))
    (ROOT / "bench" / "results" / "before.json").write_text(json.dumps(r, indent=2) + "\n")
    doc = ROOT / "docs" / "benchmarks.md"
    doc.write_text(splice(doc.read_text(), "before", section(r)))
    print(section(r))


if __name__ == "__main__":
    main()
