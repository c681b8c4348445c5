"""The worker's HTTP views: ``/metrics``, ``/health``, ``/ready`` and ``/models``.

Served by Faust's web server on ``DRIFTLINE_WEB_PORT``.
"""

import time
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from streams.scoring import ScoringService


def models_view(scoring: ScoringService) -> dict[str, Any]:
    """Per model and partition: version, counts, metric, last drift, checkpoint."""
    out: dict[str, Any] = {}
    now = time.time()
    for partition, part in scoring.processor.partitions.items():
        for name, learner in part.learners.items():
            durable_at = part.durable_at
            out.setdefault(name, {})[str(partition)] = {
                "version": learner.n_learned,
                "scored": learner.n_scored,
                "learned": learner.n_learned,
                "resets": learner.n_resets,
                "metric": {"name": learner.spec.metric, "value": learner.metric.get()},
                "last_drift": learner.last_alert,
                "checkpoint": None if part.durable < 0 else {
                    "offset": part.durable,
                    "age_seconds": None if durable_at is None else round(now - durable_at, 3)},
                "offset": part.offset,
            }
    return out


def install(app: faust.App, scoring: ScoringService) -> None:
    """Register the views on ``app``."""

    @app.page("/metrics")
    async def metrics(self: View, request: Request) -> Response:
        scoring.refresh_gauges()
        return self.bytes(scoring.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health")
    async def health(self: View, request: Request) -> Response:
        return self.json({"status": "ok"})

    @app.page("/ready")
    async def ready(self: View, request: Request) -> Response:
        body = {"ready": scoring.ready,
                "assigned": scoring.partitions(),
                "restored": scoring.partitions(restored=True)}
        return self.json(body, status=200 if scoring.ready else 503)

    @app.page("/models")
    async def models(self: View, request: Request) -> Response:
        return self.json(models_view(scoring))
