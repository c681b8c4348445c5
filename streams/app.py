"""The Faust app that hosts Driftline: lifecycle, signals and web server.

Faust's own consumer and producer are switched off (documented
:class:`BootStrategy` options); events are consumed and outputs produced with
aiokafka by :class:`streams.scoring.ScoringService`, which the app starts after its
web server and stops first.
"""

import faust
from faust.app.base import BootStrategy
from mode import ServiceT

from learners.registry import ModelRegistry
from schemas import constants
from schemas.exceptions import ConfigError
from schemas.settings import Settings
from streams import web
from streams.metrics import Metrics
from streams.processor import EventProcessor
from streams.scoring import ScoringService


class _Boot(BootStrategy):
    enable_kafka_consumer = False
    enable_kafka_producer = False


class DriftlineApp(faust.App):
    """A Faust app whose data plane is one extra service instance."""

    BootStrategy = _Boot
    scoring: ServiceT | None = None

    async def on_started_init_extra_services(self) -> None:
        """Start the scoring service once the web server runs."""
        await super().on_started_init_extra_services()
        if self.scoring is not None:
            await self.add_runtime_dependency(self.scoring)


def create_app(settings: Settings, registry: ModelRegistry) -> DriftlineApp:
    """The app of one worker process."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = DriftlineApp(
        f"{settings.app_id}-worker",
        broker=f"kafka://{settings.kafka_bootstrap}",
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        datadir=str(settings.data_dir),
        topic_disable_leader=True,
    )
    metrics = Metrics()
    metrics.declare({name: spec.task for name, spec in registry.config.models.items()},
                    constants.DEADLETTER_REASONS)
    check_checkpoint_key(settings)
    processor = EventProcessor(settings, registry)
    app.scoring = scoring = ScoringService(app, settings, processor, metrics)
    web.install(app, scoring)
    return app


def check_checkpoint_key(settings: Settings) -> None:
    """Refuse to start with checkpoints on and no signing key.

    Raises:
        ConfigError: one line saying what to set.
    """
    if settings.checkpoints and (settings.checkpoint_key is None
                                 or not settings.checkpoint_key.get_secret_value()):
        raise ConfigError("DRIFTLINE_CHECKPOINT_KEY is not set: checkpoints are signed with it "
                          "(or set DRIFTLINE_CHECKPOINTS=false to run without them)")
