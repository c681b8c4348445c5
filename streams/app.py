"""The Faust app that hosts Driftline: lifecycle, signals and web server.

Faust's own consumer and producer only serve the incidents agent and table
(:mod:`streams.incidents`, low volume: the alerts topic); with
``DRIFTLINE_INCIDENTS=false`` they are switched off (documented
:class:`BootStrategy` options). Events are consumed and outputs produced by
:class:`streams.scoring.ScoringService`, which the app starts before Faust's own services
(web server, table manager, incidents agent) — so not after the table manager's 1 s
start-up sleep nor the agent's group join — and stops first.
"""

import contextlib
from collections.abc import Iterator

import faust
from faust.app.base import BootStrategy
from faust.utils import venusian as faust_venusian

from learners import checkpoint
from learners.registry import ModelRegistry
from schemas import constants
from schemas.settings import Settings
from streams import incidents, web
from streams.kafka_clients import ensure_changelogs, ensure_topics
from streams.kafka_security import faust_credentials
from streams.metrics import Metrics
from streams.processor import EventProcessor
from streams.scoring import ScoringService


class _Boot(BootStrategy):
    enable_kafka_consumer = False
    enable_kafka_producer = False


class DriftlineApp(faust.App):
    """A Faust app whose data plane is one extra service instance."""

    BootStrategy = _Boot
    scoring: ScoringService | None = None
    settings: Settings | None = None

    async def on_start(self) -> None:
        """Create the topics, then start the scoring service, before Faust's own services.

        The topics first: the scoring consumer subscribes to the events topic and Faust's
        consumer to the alerts topic (a topic missing at its first assignment is ignored
        until the next metadata refresh). Scoring next, not after Faust's services: their
        start takes over a second (the table manager sleeps 1 s in its start) and, after a
        kill -9, Faust's incidents agent waits for the dead member of its group (no static
        membership) until its session timeout; scoring uses neither. A scoring failure
        meanwhile (a restore refused) is held until :meth:`on_started`
        (:meth:`ScoringService.hold_failures`): crashing Faust's services while the app is
        still starting them leaves Faust's consumer thread to fail its stop with a
        traceback. The alerts scoring publishes meanwhile wait in Kafka for the agent.
        """
        await super().on_start()
        if self.settings is not None:
            await ensure_topics(self.settings)
            await ensure_changelogs(self.settings, {
                table.changelog_topic_name: table.partitions or self.conf.topic_partitions
                for table in self.tables.values()})
        if self.scoring is not None:
            await self.add_runtime_dependency(self.scoring)

    async def on_started(self) -> None:
        """Faust's services run: a scoring failure held since start-up may stop the app now;
        then let Faust wait for the incidents agent's group join and table recovery."""
        if self.scoring is not None:
            self.scoring.release_failures()
        await super().on_started()

    def _new_web(self) -> web.OwnViewsOnly:
        """Faust's web server without Faust's own views (its index at ``/`` has no flag)."""
        return web.OwnViewsOnly(self)


def create_app(settings: Settings, registry: ModelRegistry) -> DriftlineApp:
    """The app of one worker process."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = DriftlineApp(
        f"{settings.app_id}-worker",
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings),  # the incidents agent's clients
        # The incidents agent's group: a worker killed with -9 leaves a member that only
        # its session timeout removes; with Faust's default (60 s) its restart waited ~54 s
        # for that rebalance before scoring began. Same timeouts as the scoring consumer.
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        # Faust's own views are not Driftline's API: /router and /table answer a 500
        # with a traceback in a worker without tables, /graph and /stats show internals.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        datadir=str(settings.data_dir),
        topic_disable_leader=True,
        topic_partitions=settings.topic_partitions,
    )
    app.settings = settings
    app.boot_strategy.enable_kafka_consumer = settings.incidents
    app.boot_strategy.enable_kafka_producer = settings.incidents
    metrics = Metrics()
    metrics.declare({name: spec.task for name, spec in registry.config.models.items()},
                    constants.DEADLETTER_REASONS)
    metrics.declare_drift(list(registry.config.models))
    check_checkpoint_key(settings)
    processor = EventProcessor(settings, registry)
    app.scoring = scoring = ScoringService(app, settings, processor, metrics)
    with _without_discovery_marks():
        if settings.incidents:
            incidents.install(app, settings, registry, metrics)
        web.install(app, scoring)
    return app


@contextlib.contextmanager
def _without_discovery_marks() -> Iterator[None]:
    """Faust marks each agent and timer for ``app.discover()`` (venusian), which a
    Driftline worker never calls (``autodiscover`` is off). Each mark reads its caller's
    frame info, and the first scans the path of every loaded module
    (``inspect.getmodule``): 0.1-0.3 s of a worker's start-up, measured. Skipped while
    the incidents agent and the web views are installed."""
    marks = faust_venusian.attach
    faust_venusian.attach = lambda *args, **kwargs: None
    try:
        yield
    finally:
        faust_venusian.attach = marks


def check_checkpoint_key(settings: Settings) -> None:
    """Refuse to start with checkpoints on and no signing key, or one shorter than 32 bytes.

    Raises:
        ConfigError: one line saying what to set.
    """
    if settings.checkpoints:
        checkpoint.signing_key(
            settings.checkpoint_key.get_secret_value() if settings.checkpoint_key else None)
