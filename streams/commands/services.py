"""``driftline services up|down|status``: local Kafka and Redis for development."""

import shlex

import typer

from streams.localservices import stack

app = typer.Typer(help="Start, stop and show the local Kafka broker and redis-server.",
                  no_args_is_help=True)


@app.command()
def up(
    kafka_port: int = typer.Option(None, help="Kafka port (default: a free one)."),
    redis_port: int = typer.Option(None, help="Redis port (default: a free one)."),
    appendonly: bool = typer.Option(True, help="Redis AOF persistence."),
    secure: bool = typer.Option(False, help="Kafka on SASL_SSL (SCRAM-SHA-512) and "
                                "redis-server on TLS with an ACL user, a fresh CA and random "
                                "passwords; the exports then include the credentials."),
) -> None:
    """Start Kafka (from Maven-fetched jars) and redis-server; print their addresses.

    Prints shell ``export`` lines, so ``eval "$(driftline services up)"`` points
    this shell's workers at them. With ``--secure`` those lines are the only place the
    passwords are printed.
    """
    addresses = stack.up(kafka_port=kafka_port, redis_port=redis_port, appendonly=appendonly,
                         secure=secure)
    for name, value in addresses.as_env().items():
        typer.echo(f"export {name}={shlex.quote(value)}")


@app.command()
def down() -> None:
    """Stop the services ``up`` started (from any shell)."""
    stopped = stack.down()
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status() -> None:
    """Show each service ``up`` started: address, pid and whether it runs."""
    entries = stack.status()
    if not entries:
        typer.echo("no services started")
    for name, entry in entries.items():
        state = "running" if entry["running"] else "stopped"
        typer.echo(f"{name}\t{entry['address']}\tpid {entry['pid']}\t{state}")
