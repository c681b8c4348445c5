"""``driftline worker``: run one scoring worker until SIGTERM or SIGINT."""

import faust

from schemas.settings import Settings
from streams import logs
from streams.app import create_app
from streams.config import load_registry


def worker() -> None:
    """Consume the events topic, score and learn, publish predictions and alerts.

    Configured by ``DRIFTLINE_*`` environment variables (see the README).
    """
    settings = Settings()
    registry = load_registry(settings)
    app = create_app(settings, registry)
    logs.configure(settings.log_level, settings.log_json)
    faust.Worker(app, loglevel=settings.log_level, quiet=True, override_logging=False,
                 redirect_stdouts=False).execute_from_commandline()
