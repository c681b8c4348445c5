"""``driftline worker``: run one scoring worker until SIGTERM or SIGINT.

Before anything starts, the worker connects once to Kafka and (with checkpoints) Redis
with its credentials, so a wrong password, certificate or address ends start-up with one
line and exit code 1 instead of a traceback from inside a running service.
"""

import asyncio

import faust

from schemas.settings import Settings
from streams import logs
from streams.app import create_app
from streams.commands.access import check_access
from streams.config import load_registry


def worker() -> None:
    """Consume the events topic, score and learn, publish predictions and alerts.

    Configured by ``DRIFTLINE_*`` environment variables (see the README).
    """
    settings = Settings()
    registry = load_registry(settings)
    loop = asyncio.new_event_loop()  # not the current loop: Faust makes its own
    try:
        loop.run_until_complete(check_access(settings))
    finally:
        loop.close()
    app = create_app(settings, registry)
    logs.configure(settings.log_level, settings.log_json)
    faust.Worker(app, loglevel=settings.log_level, quiet=True, override_logging=False,
                 redirect_stdouts=False).execute_from_commandline()
