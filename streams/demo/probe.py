"""The worker's own view of itself, from its web port: consumer lag and checkpoints.

>>> stats = parse_metrics('driftline_consumer_lag{partition="0"} 12.0\\n'
...                       'driftline_consumer_lag{partition="1"} 3.0\\n'
...                       'driftline_checkpoints_total 7.0\\n')
>>> stats.lag, stats.checkpoints
(15, 7)
>>> parse_models(stats, {"reset": {"0": {"version": 40, "resets": 1,
...     "checkpoint": {"offset": 38, "age_seconds": 0.5}}}}).models["reset"]
ModelStats(version=40, resets=1, checkpoint_offsets={'0': 38}, feedback={})
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class ModelStats:
    """One model summed over partitions: events learned, resets, checkpointed offsets,
    and late-label outcome totals (``matched``, ``early``, ... ; empty without late labels)."""

    version: int
    resets: int
    checkpoint_offsets: dict[str, int]
    feedback: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerStats:
    """What the worker reported last; None where it has not said yet."""

    lag: int | None = None
    checkpoints: int | None = None
    models: dict[str, ModelStats] = field(default_factory=dict)


def parse_metrics(text: str) -> WorkerStats:
    """Lag (summed over partitions) and checkpoints written, from ``/metrics``."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    lag = sums.get("driftline_consumer_lag")
    checkpoints = sums.get("driftline_checkpoints_total")
    return WorkerStats(None if lag is None else int(lag),
                       None if checkpoints is None else int(checkpoints))


def parse_models(stats: WorkerStats, body: dict[str, Any]) -> WorkerStats:
    """``stats`` with the per-model figures of ``/models`` added.

    >>> part = {"version": 5, "resets": 0, "checkpoint": None,
    ...         "feedback": {"totals": {"matched": 4, "early": 1}}}
    >>> parse_models(WorkerStats(), {"m": {"0": part, "1": part}}).models["m"].feedback
    {'matched': 8, 'early': 2}
    """
    models = {}
    for name, partitions in body.items():
        feedback: Counter[str] = Counter()
        for p in partitions.values():
            feedback.update((p.get("feedback") or {}).get("totals") or {})
        models[name] = ModelStats(
            version=sum(p["version"] for p in partitions.values()),
            resets=sum(p["resets"] for p in partitions.values()),
            checkpoint_offsets={k: p["checkpoint"]["offset"] for k, p in partitions.items()
                                if p.get("checkpoint")},
            feedback=dict(feedback))
    return WorkerStats(stats.lag, stats.checkpoints, models)


async def ready(session: aiohttp.ClientSession, port: int) -> bool:
    """True once the worker says every assigned partition is restored (``/ready``)."""
    try:
        async with session.get(f"http://127.0.0.1:{port}/ready") as response:
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


async def ask(session: aiohttp.ClientSession, port: int) -> WorkerStats | None:
    """The worker's stats, or None while it does not answer (starting, stopping)."""
    base = f"http://127.0.0.1:{port}"
    try:
        async with session.get(f"{base}/metrics") as response:
            stats = parse_metrics(await response.text())
        async with session.get(f"{base}/models") as response:
            return parse_models(stats, await response.json())
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return None
