"""``./dev bench``: every benchmark in one run, on real local Kafka and Redis.

Writes ``docs/benchmarks.md`` and ``bench/results/latest.json``. Ratios compare
numbers measured in this same run. ``--events`` scales the main workload.
"""

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

from bench import feedback_throughput, runs
from bench.baselines import in_process
from bench.latency import measure_latency
from bench.report import render, splice
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


def latency(env: runs.Env, rate: int, seconds: float) -> dict[str, float]:
    """Start a worker, warm it up, then measure at ``rate``."""
    prefix = env.prefix(f"latency{rate}")
    asyncio.run(create_topics(env.bootstrap, {f"{prefix}{t}": 1 for t in
                                              ("events", "predictions", "alerts",
                                               "deadletter")}))
    settings = worker_env(env.bootstrap, env.redis_url, prefix, env.tmp / prefix)
    worker = WorkerProcess(settings, env.tmp / f"{prefix}.log").start()
    try:
        import urllib.request

        def ready() -> bool:
            try:
                url = f"http://127.0.0.1:{settings['DRIFTLINE_WEB_PORT']}/ready"
                return urllib.request.urlopen(url, timeout=1).status == 200
            except OSError:
                return False
        if not wait_until(ready, 60):
            raise RuntimeError(f"worker not ready: {worker.log()[-500:]}")
        return asyncio.run(measure_latency(env.bootstrap, prefix, rate, seconds,
                                           warmup=min(1000, rate)))
    finally:
        worker.stop()


def main() -> None:
    """Run everything, print progress, write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--model-events", type=int, default=20_000)
    parser.add_argument("--pair-events", type=int, default=100_000)
    parser.add_argument("--latency-seconds", type=float, default=8.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="driftline-bench-"))
    broker = KafkaBroker.create(tmp / "kafka")
    broker.start(die_with_parent=True)
    redis = RedisServer.create(tmp / "redis", appendonly=True)
    redis.start(die_with_parent=True)
    env = runs.Env(broker.bootstrap, redis.url, tmp)
    out: dict[str, object] = {"machine": machine(), "events": args.events,
                              "pair_events": args.pair_events}
    try:
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
                models=path))})
        out["models"] = models
        out["latency"] = [step(f"latency at {rate}/s", latency, env, rate, args.latency_seconds)
                          for rate in (500, 2000, 8000)]
        out["recovery"] = step("recovery after kill -9", runs.recovery, env, values[:100_000])
        out["feedback_throughput"] = step("late labels vs labels inline",
                                          feedback_throughput.run, env, 20_000, 2, (50, 2000))
    finally:
        redis.stop()
        broker.stop()
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.json").write_text(json.dumps(out, indent=2, default=str))
    (ROOT / "docs" / "benchmarks.md").write_text(splice(
        render(out), feedback_throughput.SECTION,
        feedback_throughput.render(out["feedback_throughput"])))
    print(f"wrote {ROOT / 'docs' / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
