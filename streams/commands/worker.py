"""``driftline worker``: run one scoring worker until SIGTERM or SIGINT.

Before anything starts, the worker connects once to Kafka and (with checkpoints) Redis
with its credentials, so a wrong password, certificate or address ends start-up with one
line and exit code 1 instead of a traceback from inside a running service. A worker that
stops on an error says why in its last log line (``worker stopped: ...``, one line) and
exits 1.

``driftline worker --supervise`` (or ``DRIFTLINE_SUPERVISE=true``) runs the worker as the
child of a parent that has done the imports and forks a new worker at once when the
child dies (kill -9, the OOM killer, a crash): see :mod:`streams.supervisor`.
"""

import asyncio
import logging
import sys
from typing import Annotated

import faust
import typer

from schemas.exceptions import DriftlineError
from schemas.settings import Settings
from streams import logs, supervisor
from streams.app import create_app
from streams.commands.access import check_access, check_web_port
from streams.config import load_registry

log = logging.getLogger(__name__)


class Worker(faust.Worker):
    """Faust's worker, remembering the error its start-up failed with; its start-up
    spinner only on a terminal (elsewhere it wrote cursor escapes into the log)."""

    failure: BaseException | None = None

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if not self.stdout.isatty():
            self.spinner = None

    async def start(self) -> None:
        """Start every service; an error is kept for the last log line, then raised."""
        try:
            await super().start()
        except Exception as exc:
            self.failure = exc
            raise


def why(exc: BaseException) -> str:
    """One line saying why the worker stopped: a :class:`DriftlineError`'s own message,
    else the exception's type and first line.

    >>> why(DriftlineError("topic t.feedback has 2 partitions"))
    'topic t.feedback has 2 partitions'
    >>> why(ValueError("bad value\\nmore"))
    'ValueError: bad value'
    """
    if isinstance(exc, DriftlineError):
        return " ".join(str(exc).split())
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def worker(supervise: Annotated[bool, typer.Option(
        "--supervise",
        help="Run the worker as the child of a parent that has done the imports and forks "
             "a new worker at once when it dies (kill -9, OOM, crash; not on exit code 1 "
             "or a clean stop); SIGTERM/SIGINT stop both. Also DRIFTLINE_SUPERVISE=true."
    )] = False) -> None:
    """Consume the events topic, score and learn, publish predictions and alerts.

    Configured by ``DRIFTLINE_*`` environment variables (see the README).
    """
    settings = Settings()
    registry = load_registry(settings)
    check_web_port(settings)
    if supervise or settings.supervise:  # returns in the worker child; the parent exits
        logs.configure(settings.log_level, settings.log_json)
        if settings.instance_id is None:
            log.warning("--supervise without DRIFTLINE_INSTANCE_ID: a restarted worker gets "
                        "its partitions back only after the group's session timeout "
                        "(DRIFTLINE_SESSION_TIMEOUT); set a unique DRIFTLINE_INSTANCE_ID per "
                        "worker to take them back at once")
        supervisor.supervise()
    loop = asyncio.new_event_loop()  # not the current loop: Faust makes its own
    try:
        loop.run_until_complete(check_access(settings))
    finally:
        loop.close()
    app = create_app(settings, registry)
    logs.configure(settings.log_level, settings.log_json)
    running = Worker(app, loglevel=settings.log_level, quiet=True, override_logging=False,
                      redirect_stdouts=False)
    code: int | str | None = 0
    try:
        running.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code
    failure = running.failure or running.crash_reason or app.crash_reason
    if failure is not None:  # after Faust's own shutdown lines: the last line says why
        log.error("worker stopped: %s", why(failure))
        sys.exit(1)
    sys.exit(code)
