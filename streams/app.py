"""The Faust app that hosts Driftline: lifecycle, signals, producer and web server.

Faust's own consumer is switched off (a documented :class:`BootStrategy`
option); the events are consumed by :class:`streams.scoring.ScoringService`,
which the app starts after its producer and web server and stops first.
"""

import faust
from faust.app.base import BootStrategy
from mode import ServiceT

from learners.registry import ModelRegistry
from schemas.settings import Settings
from streams.processor import EventProcessor
from streams.scoring import ScoringService


class _Boot(BootStrategy):
    enable_kafka_consumer = False


class DriftlineApp(faust.App):
    """A Faust app whose data plane is one extra service instance."""

    BootStrategy = _Boot
    scoring: ServiceT | None = None

    async def on_started_init_extra_services(self) -> None:
        """Start the scoring service once the producer and web server run."""
        await super().on_started_init_extra_services()
        if self.scoring is not None:
            await self.add_runtime_dependency(self.scoring)


def create_app(settings: Settings, registry: ModelRegistry) -> DriftlineApp:
    """The app of one worker process."""
    app = DriftlineApp(
        f"{settings.app_id}-worker",
        broker=f"kafka://{settings.kafka_bootstrap}",
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        datadir=str(settings.data_dir),
        topic_disable_leader=True,
        producer_acks=-1,
        producer_max_request_size=settings.max_fetch_bytes + 64 * 1024,
        producer_linger=0.002,
    )
    app.scoring = ScoringService(app, settings, EventProcessor(settings, registry))
    return app
