"""``driftline demo``: the whole system at work on a drifting stream, live, with a picture.

Starts Kafka and Redis (unless told to use running ones), a worker with two models (one
resets on drift, one does not), streams River's SEA with two abrupt drifts plus malformed
messages, shows a live view, then a summary table and a PNG. Everything it started is
stopped at the end, on an error and on Ctrl-C. The parts live in :mod:`streams.demo`.
"""

import asyncio
import json
import os
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import typer
from rich.console import Console

from learners.registry import ModelRegistry
from schemas.exceptions import ConfigError
from schemas.models_file import ModelsConfig
from schemas.settings import Settings
from streams.demo import plot, runner, services
from streams.demo.dataset import DATASETS, load, malformed, messages
from streams.demo.live import LiveView
from streams.demo.summary import summarize, tables
from streams.demo.tracker import RunState, Tracker
from streams.localservices.paths import cache_dir, run_dir

#: Predictions behind the live rolling accuracy.
LIVE_WINDOW = 500


def demo(
    events: int = typer.Option(50_000, min=30, help="Events of the stream (each is sent to "
                               "every model, so twice with the two default models)."),
    rate: float = typer.Option(2_500.0, min=0, help="Stream events per second; 0 sends as "
                               "fast as possible."),
    models: Path = typer.Option(None, exists=True, dir_okay=False, readable=True,
                                help="Models file (TOML) instead of the demo's two logistic "
                                "regressions (one with on_drift = \"reset\")."),
    partitions: int = typer.Option(1, min=1, help="Partitions of the demo's topics. Each "
                                   "(model, partition) learns and alerts on its own, so more "
                                   "partitions mean one alert per partition for each change."),
    dataset: str = typer.Option("sea", help=f"The stream: {', '.join(DATASETS)} (sea: "
                                "synthetic, two known drifts; the others: real data River "
                                "ships, no download)."),
    out: Path = typer.Option(None, help="Folder for demo.png, summary.json and the worker's "
                             "log (default: ~/.cache/driftline/demo; DRIFTLINE_CACHE_DIR "
                             "moves it)."),
    keep_services: bool = typer.Option(False, "--keep-services", help="Leave Kafka and Redis "
                                       "running (as `driftline services up` does)."),
    no_services: bool = typer.Option(False, "--no-services", help="Use the running Kafka and "
                                     "Redis (DRIFTLINE_KAFKA_BOOTSTRAP / DRIFTLINE_REDIS_URL, "
                                     "else those of `driftline services up`)."),
    seed: int = typer.Option(42, help="Seed of the synthetic stream."),
    label_delay: int = typer.Option(0, min=0, help="Late labels: events go without their "
                                    "label, which follows on the feedback topic this many "
                                    "events later (0: labels inside the events)."),
) -> None:
    """Stream a drifting dataset through a real worker; show it live; plot and summarise it."""
    if keep_services and no_services:
        raise ConfigError("give at most one of --keep-services and --no-services")
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=120)  # logs: no wrapping at 80 columns

    def say(text: str) -> None:
        console.print(f"demo: {text}", soft_wrap=True)

    out = (out or cache_dir() / "demo").resolve()
    out.mkdir(parents=True, exist_ok=True)
    stream = load(dataset, events, seed)
    text = models.read_text(encoding="utf-8") if models else stream.models_file()
    config = ModelsConfig.from_toml(text)
    registry = ModelRegistry(config, cooldown=1)
    names = list(registry.names)
    models_path = out / "models.toml"
    models_path.write_text(text, encoding="utf-8")
    binary = registry.new_learner(names[0]).binary
    bad = malformed(names, binary)
    total = len(stream.rows) * len(names) + len(bad)
    actions = {m: spec.drift.on_drift for m, spec in config.models.items()}
    say(f"{stream.description}; {len(stream.rows):,} events x {len(names)} models "
        f"({', '.join(f'{m}: on_drift = {a}' for m, a in actions.items())}) + {len(bad)} "
        f"malformed messages, {partitions} partition(s)"
        + (f"; labels {label_delay:,} events late on the feedback topic" if label_delay else ""))
    mode: services.Mode = "running" if no_services else "keep" if keep_services else "own"
    prefix = f"demo-{time.time_ns() // 1_000_000}."
    try:
        with ExitStack() as stack:
            addresses = stack.enter_context(services.kafka_and_redis(
                mode, run_dir() / f"demo-{os.getpid()}", say))
            settings = Settings(kafka_bootstrap=addresses.kafka_bootstrap, topic_prefix=prefix,
                                topic_partitions=partitions)
            (out / "worker" / "worker.log").unlink(missing_ok=True)
            worker = stack.enter_context(services.worker(
                settings, addresses.redis_url, models_path, out / "worker", say))
            state = RunState(total=total, tracker=Tracker(names, stream.labels, LIVE_WINDOW),
                             started=time.monotonic(), drifts=stream.drifts)
            title = (f"Driftline demo: {stream.name}, {len(stream.rows):,} events x "
                     f"{len(names)} models, topics {prefix}*")
            with LiveView(console, state, title) as view:
                asyncio.run(runner.run(settings, messages(stream, names, bad, label_delay), rate,
                                       state,
                                       view, worker))
            models_seen = state.stats.models
            matched = {m: models_seen[m].feedback.get("matched", 0) if m in models_seen
                       else None for m in names}
            summary = summarize(stream, state.tracker, dict(Counter(m.reason for m in bad)),
                                total, time.monotonic() - state.started, partitions=partitions,
                                label_delay=label_delay, labels_sent=state.labels_sent,
                                labels_matched=matched)
            window = max(50, len(stream.rows) // 100)
            png = plot.draw(out / "demo.png", state.tracker, stream.drifts, actions,
                            f"Driftline demo: {stream.description}", window)
            summary.png = str(png)
            (out / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2))
            for table in tables(summary):
                console.print(table)
    except KeyboardInterrupt:
        console.print("demo: interrupted; everything it started is stopped")
        raise typer.Exit(130) from None
    if mode == "keep":
        say(f"Kafka {addresses.kafka_bootstrap} and Redis "
            f"{services.without_password(addresses.redis_url)} keep running: "
            "`driftline services down` stops them")
    say(f"summary: {out / 'summary.json'}")
    say(f"picture: {png}")
