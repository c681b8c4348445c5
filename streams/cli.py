"""The ``driftline`` command line.

Every expected failure (a :class:`~schemas.exceptions.DriftlineError`) ends
as one line on stderr and exit code 1, never a traceback.
"""

import sys

import typer
from pydantic import ValidationError

from schemas.exceptions import DriftlineError
from schemas.settings import Settings, settings_problem
from streams.commands import checkpoints, demo, produce, read, services, worker

app = typer.Typer(help="Driftline: online machine learning on Kafka event streams.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(services.app, name="services")
app.add_typer(checkpoints.app, name="checkpoints")
app.command()(demo.demo)
app.command()(worker.worker)
app.command()(produce.produce)
app.command()(read.read)


def main() -> None:
    """Entry point of the ``driftline`` console script."""
    try:
        app()
    except DriftlineError as exc:
        typer.echo(f"driftline: {exc}", err=True)
        sys.exit(1)
    except ValidationError as exc:  # a DRIFTLINE_* variable: one line, no value
        if exc.title != Settings.__name__:
            raise
        typer.echo(f"driftline: {settings_problem(exc)}", err=True)
        sys.exit(1)
