"""``./dev bench``: every benchmark in one run, on real local Kafka and Redis.

Writes ``docs/benchmarks.md`` and ``bench/results/latest.json``. Ratios compare
numbers measured in this same run. ``--events`` scales the main workload; ``--soak-seconds``
the soak (10 minutes at 5,000 events/s by default; ``--soak-seconds 60`` for a short run).
Every target of issue 16 is printed and written with met / not met.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

from bench import feedback_throughput, learner_speed, runs, soak
from bench.baselines import in_process
from bench.latency import TracedWorker, alternated, measure_latency
from bench.report import REPORT, render, splice, target_lines
from bench.workload import create_topics, make_events
from streams.localservices.kafka import KafkaBroker, kafka_version
from streams.localservices.process import wait_until
from streams.localservices.redis import RedisServer
from streams.localservices.workers import WorkerProcess, worker_env

ROOT = Path(__file__).resolve().parents[1]
MODELS = """
[models.default]
task = "classification"
pipeline = "{pipeline}"
"""
PIPELINES = {
    "logistic regression": "preprocessing.StandardScaler() | linear_model.LogisticRegression()",
    "Hoeffding tree": "tree.HoeffdingTreeClassifier()",
    "adaptive random forest": "forest.ARFClassifier(n_models=10, seed=1)",
}


def machine() -> dict[str, str]:
    """What ran the benchmark."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(),
            "kafka": kafka_version(), "river": version("river"),
            "faust-streaming": version("faust-streaming"), "aiokafka": version("aiokafka"),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def wait_ready(settings: dict[str, str], worker: WorkerProcess, timeout: float = 60) -> None:
    """Return once the worker's ``/ready`` answers 200; RuntimeError after ``timeout``."""
    import urllib.request

    def ready() -> bool:
        try:
            url = f"http://127.0.0.1:{settings['DRIFTLINE_WEB_PORT']}/ready"
            return urllib.request.urlopen(url, timeout=1).status == 200
        except OSError:
            return False
    if not wait_until(ready, timeout):
        raise RuntimeError(f"worker not ready: {worker.log()[-500:]}")


@contextlib.contextmanager
def ready_worker(env: runs.Env, name: str, append_time: tuple[str, ...] = (),
                 process: type[WorkerProcess] = WorkerProcess,
                 **extra: str) -> Iterator[tuple[str, WorkerProcess]]:
    """A worker on fresh one-partition topics of its own prefix, ready; stopped after.
    Topics named in ``append_time`` stamp LogAppendTime; ``extra``: more environment."""
    prefix = env.prefix(name)
    asyncio.run(create_topics(env.bootstrap, {f"{prefix}{t}": 1 for t in
                                              ("events", "predictions", "alerts",
                                               "deadletter")},
                              append_time=tuple(f"{prefix}{t}" for t in append_time)))
    settings = worker_env(env.bootstrap, env.redis_url, prefix, env.tmp / prefix, **extra)
    worker = process(settings, env.tmp / f"{prefix}.log").start()
    try:
        wait_ready(settings, worker)
        yield prefix, worker
    finally:
        worker.stop()


def latency(env: runs.Env, rate: int, seconds: float, **extra: str) -> dict[str, object]:
    """Start a worker traced by :mod:`bench.latency_trace`, warm it up, then measure at
    ``rate`` (and cut each event's latency into phases); ``extra``: worker environment
    (``BENCH_READER=loop``: read predictions in the producer's loop, as before)."""
    reader = extra.pop("BENCH_READER", "process")
    trace = env.tmp / f"latency{rate}-{time.monotonic_ns()}.json"
    with ready_worker(env, f"latency{rate}", ("events", "predictions"), TracedWorker,
                      BENCH_LATENCY_TRACE=str(trace), **extra) as (prefix, worker):
        return asyncio.run(measure_latency(env.bootstrap, prefix, rate, seconds,
                                           warmup=min(1000, rate), trace=trace,
                                           stop_worker=worker.stop, reader=reader))


def soak_run(env: runs.Env, rate: int, seconds: float) -> dict[str, object]:
    """A worker fed ``rate`` events/s for ``seconds``; its RSS every 10 s and the slope."""
    with ready_worker(env, f"soak{rate}") as (prefix, worker):
        assert worker.proc is not None
        return asyncio.run(soak.offer(env.bootstrap, f"{prefix}events", rate, seconds,
                                      worker.proc.pid))


def previous_results() -> dict[str, object] | None:
    """The results of the last full run (to compare this run with), if any."""
    path = ROOT / "bench" / "results" / "latest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main() -> None:
    """Run everything, print progress, write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--model-events", type=int, default=20_000)
    parser.add_argument("--pair-events", type=int, default=100_000)
    parser.add_argument("--latency-seconds", type=float, default=8.0)
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--soak-rate", type=int, default=5_000)
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the py-spy profile (bench.profile)")
    parser.add_argument("--only", choices=["latency"],
                        help="run only this step (results in bench/results/<step>.json; "
                             "docs/benchmarks.md and latest.json are left as they are)")
    parser.add_argument("--latency-rates", default="500,2000,8000",
                        help="offered rates of the latency step (events/s, comma-separated)")
    parser.add_argument("--latency-variants", default="",
                        help="with --only latency: 'name:VAR=value,VAR=value;name2:...' "
                             "worker environments measured alternately (--latency-repeats "
                             "rounds) on the same broker")
    parser.add_argument("--latency-repeats", type=int, default=1)
    args = parser.parse_args()
    # First line: which interpreter ran (results differ by version; docs/benchmarks.md).
    print(f"driftline bench: Python {platform.python_version()} ({sys.executable})", flush=True)
    rates = [int(r) for r in args.latency_rates.split(",")]
    previous = previous_results()
    tmp = Path(tempfile.mkdtemp(prefix="driftline-bench-"))
    broker = KafkaBroker.create(tmp / "kafka")
    broker.start(die_with_parent=True)
    redis = RedisServer.create(tmp / "redis", appendonly=True)
    redis.start(die_with_parent=True)
    env = runs.Env(broker.bootstrap, redis.url, tmp)
    out: dict[str, object] = {"machine": machine(), "events": args.events,
                              "pair_events": args.pair_events,
                              "load_start": os.getloadavg()}
    if previous is not None:
        out["previous"] = {k: previous.get(k) for k in (
            "machine", "driftline", "aiokafka", "in_process", "checkpoint_pairs")}
    try:
        if args.only == "latency":
            out["latency"] = alternated(lambda rate, **extra: latency(
                env, rate, args.latency_seconds, **extra), rates, args.latency_variants,
                args.latency_repeats)
            (ROOT / "bench" / "results" / "latency.json").write_text(
                json.dumps(out, indent=2, default=str))
            return
        values = make_events(args.events)

        def step(name: str, fn, *a, **kw):
            started = time.monotonic()
            print(f"- {name} ...", flush=True)
            result = fn(*a, **kw)
            print(f"  {result} ({time.monotonic() - started:.0f}s)", flush=True)
            return result

        out["in_process"] = step("(a) River in-process", in_process, values)
        out["driftline"] = asdict(step("Driftline", runs.driftline, env, "driftline", values))
        out["aiokafka"] = asdict(step("(b) plain aiokafka", runs.plain_aiokafka, env, values))
        try:
            import confluent_kafka  # noqa: F401  (optional: measured when installed)
            out["confluent"] = asdict(step("(d) plain confluent-kafka", runs.plain_confluent,
                                           env, values))
            out["aiokafka_again"] = asdict(step("(b) plain aiokafka, again",
                                                runs.plain_aiokafka, env, values))
        except ImportError:
            print("  confluent-kafka is not installed: (d) skipped", flush=True)
        out["faust"] = asdict(step("(c) naive Faust", runs.naive_faust, env, values))
        pairs = []
        for i in range(5):  # on/off alternated, so drift in the machine hits both alike
            on = step(f"checkpoints on #{i + 1}", runs.driftline, env, f"ckon{i}",
                      values[:args.pair_events])
            off = step(f"checkpoints off #{i + 1}", runs.driftline, env, f"ckoff{i}",
                       values[:args.pair_events], DRIFTLINE_CHECKPOINTS="false")
            pairs.append({"on": on.rate, "off": off.rate})
        out["checkpoint_pairs"] = pairs
        out["scale"] = [asdict(step(f"scale {p}p/{w}w", runs.driftline, env, f"p{p}w{w}",
                                    values, partitions=p, workers=w))
                        for p, w in ((4, 1), (4, 2))]
        small = values[:args.model_events]
        models = []
        for label, pipeline in PIPELINES.items():
            path = tmp / f"{label.replace(' ', '-')}.toml"
            path.write_text(MODELS.format(pipeline=pipeline))
            models.append({"model": label, **asdict(step(
                f"model {label}", runs.driftline, env, label.split()[0].lower(), small,
                models=path)), "in_process": step(f"model {label} in-process", in_process,
                                                  small, pipeline)})
        out["models"] = models
        out["latency"] = [step(f"latency at {rate}/s", latency, env, rate, args.latency_seconds)
                          for rate in rates]
        out["recovery"] = step("recovery after kill -9", runs.recovery, env, values[:100_000])
        out["soak"] = step(f"soak {args.soak_rate}/s for {args.soak_seconds:.0f}s", soak_run,
                           env, args.soak_rate, args.soak_seconds)
        out["restored"] = [{"model": label, **step(f"restored vs fresh {label}",
                                                   learner_speed.restored_vs_fresh, pipeline)}
                           for label, pipeline in PIPELINES.items() if "forest" not in pipeline]
        out["learner_bytes"] = {label: step(f"learner memory {label}",
                                            learner_speed.learner_bytes, pipeline)
                                for label, pipeline in PIPELINES.items()}
        out["feedback_throughput"] = step("late labels vs labels inline",
                                          feedback_throughput.run, env, 20_000, 2, (50, 2000))
    finally:
        redis.stop()
        broker.stop()
    out["load_end"] = os.getloadavg()
    if not args.no_profile:
        from bench import profile

        try:
            prof = profile.profile(100_000, tmp / "profile")
            out["profile"] = prof  # the targets' explanations cite it
            (ROOT / "bench" / "results" / "profile.json").write_text(json.dumps(prof, indent=2))
            text = profile.render(prof)
            REPORT.write_text(splice(REPORT.read_text(), "profile",
                                     "## Where a worker's time goes (py-spy)\n\n" + text))
        except (OSError, RuntimeError) as exc:  # py-spy missing or not allowed to trace
            print(f"  profile skipped: {exc}", flush=True)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.json").write_text(json.dumps(out, indent=2, default=str))
    (ROOT / "docs" / "benchmarks.md").write_text(splice(
        render(out), feedback_throughput.SECTION,
        feedback_throughput.render(out["feedback_throughput"])))
    for line in target_lines(out):
        print(line)
    print(f"wrote {ROOT / 'docs' / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
