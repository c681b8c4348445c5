"""Micro-benchmarks of one learner, no Kafka: a restored learner's speed against a fresh
one's, and the memory one (model, partition) learner holds.

A restored learner must score and learn at the speed of a fresh one (issue 16: ±5%).
Both are trained on the same ``warm`` events (the restored one is then written and read
back through :mod:`learners.checkpoint`, as the worker restores it) and timed, in CPU
time, on the same next ``events``; the two alternate ``rounds`` times and the result is
the median of the per-round ratios, so a load change on a shared machine hits both alike.

>>> r = restored_vs_fresh("preprocessing.StandardScaler() | linear_model.LogisticRegression()",
...                       warm=50, events=50, rounds=1)
>>> sorted(r)
['fresh_us', 'ratio', 'restored_us', 'rounds']
"""

import gc
import statistics
import time
import tracemalloc
from typing import Any

from bench.workload import make_events


def _data(n: int) -> list[tuple[dict[str, Any], Any]]:
    from schemas.event import Event

    events = [Event.model_validate_json(v) for v in make_events(n, seed=7)]
    return [(e.features, e.label) for e in events]  # keys as the worker has them


def _learner(pipeline: str, data: list[tuple[dict[str, Any], Any]], warm: int,
             restored: bool) -> Any:
    from learners import checkpoint
    from learners.learner import Learner
    from schemas.models_file import ModelSpec

    learner = Learner.from_spec(ModelSpec(task="classification", pipeline=pipeline), 1000)
    for x, y in data[:warm]:
        learner.step(x, y)
    if restored:
        where = checkpoint.Where(group="g", topic="t", partition=0, model="m")
        blob = checkpoint.dump(learner, where, offset=warm, key=b"k" * 32, now=0.0)
        learner = checkpoint.load(blob, where, key=b"k" * 32)[1]
    return learner


def _time(learner: Any, data: list[tuple[dict[str, Any], Any]]) -> float:
    step = learner.step
    start = time.process_time()
    for x, y in data:
        step(x, y)
    return (time.process_time() - start) / len(data) * 1e6


def restored_vs_fresh(pipeline: str, warm: int = 2_000, events: int = 4_000,
                      rounds: int = 7) -> dict[str, float]:
    """µs per ``Learner.step`` of a fresh and a restored learner (medians) and the median
    of their per-round ratios (restored / fresh)."""
    data = _data(warm + events)
    rest = data[warm:]
    fresh, restored, ratios = [], [], []
    for _ in range(rounds):
        f = _time(_learner(pipeline, data, warm, False), rest)
        r = _time(_learner(pipeline, data, warm, True), rest)
        fresh.append(f)
        restored.append(r)
        ratios.append(r / f)
    return {"fresh_us": statistics.median(fresh), "restored_us": statistics.median(restored),
            "ratio": statistics.median(ratios), "rounds": rounds}


def learner_bytes(pipeline: str, events: int = 10_000) -> int:
    """Bytes one learner holds after ``events`` events (tracemalloc: what building and
    training it allocated and kept)."""
    data = _data(events)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        learner = _learner(pipeline, data, events, False)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del learner
    return held
