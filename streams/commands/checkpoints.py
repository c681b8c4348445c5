"""``driftline checkpoints list|show|rollback|export|import``.

They act on the checkpoints of consumer group ``DRIFTLINE_APP_ID`` for the events topic
``DRIFTLINE_TOPIC_PREFIX`` + ``events``, in ``DRIFTLINE_REDIS_URL``, signed with
``DRIFTLINE_CHECKPOINT_KEY`` (at least 32 bytes). ``rollback`` and ``import`` refuse while
the consumer group has members (a worker runs: it would overwrite what they write), unless
``--force``. Nothing is unpickled outside :mod:`learners.safe_pickle`'s allow-list: ``import``
loads the file through it, checks it holds a learner of the models file's model, and writes
that learner again (never the file's raw bytes).
"""

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import typer
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from learners import checkpoint
from learners.checkpoint import Header
from schemas import constants
from schemas.exceptions import ConfigError, DriftlineError
from schemas.settings import Settings
from streams.checkpoint_store import CheckpointStore
from streams.commands.access import check_kafka, check_redis
from streams.config import load_models
from streams.exceptions import ServiceError
from streams.kafka_clients import make_admin, make_reader
from streams.redis_client import make_redis

_FORCE = ("Go on even though the consumer group has members (a running worker overwrites "
          "the change with its next checkpoint, or resumes from it mid-stream).")
app = typer.Typer(help="List, inspect, roll back, export and import model checkpoints.",
                  no_args_is_help=True)
T = TypeVar("T")
#: Seconds to wait for the group's coordinator (a fresh broker elects one on first ask).
_COORDINATOR_WAIT = 15.0
#: The largest file ``import`` reads: an uncompressed payload at its cap, plus its header.
_MAX_FILE_BYTES = checkpoint.MAX_PAYLOAD_BYTES + 1024**2


def _version(blobs: list[bytes], model: str, partition: int, version: int) -> bytes:
    """Stored version ``version`` (0: the newest) of ``blobs``.

    >>> _version([b"new", b"old"], "m", 0, 1)
    b'old'
    >>> try:
    ...     _version([b"new"], "m", 0, 7)
    ... except ConfigError as exc:
    ...     print(exc)
    model m partition 0 has no version 7: it has version 0 (the newest)
    """
    if not 0 <= version < len(blobs):
        have = ("no stored version" if not blobs else "version 0 (the newest)"
                if len(blobs) == 1 else f"versions 0 (the newest) to {len(blobs) - 1}")
        raise ConfigError(f"model {model} partition {partition} has no version {version}: "
                          f"it has {have}")
    return blobs[version]


def _read_bounded(file: Path) -> bytes:
    """The bytes of a regular ``file`` of at most ``_MAX_FILE_BYTES`` (no checkpoint is
    larger); what is read is bounded too, so a file growing meanwhile, a pipe or a device
    (``/dev/zero``: size 0) is refused in one line instead of filling memory.

    Raises:
        ConfigError: not a regular file, unreadable, or larger than any checkpoint.
    """
    try:
        if not file.is_file():
            raise ConfigError(f"{file}: not a regular file")
        if (size := file.stat().st_size) > _MAX_FILE_BYTES:  # not read at all
            raise ConfigError(f"{file} is {size} bytes: larger than any checkpoint "
                              f"({_MAX_FILE_BYTES} at most)")
        with file.open("rb") as handle:
            blob = handle.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{file}: {exc.strerror or exc}") from None
    if len(blob) > _MAX_FILE_BYTES:
        raise ConfigError(f"{file} grew while it was read: larger than any checkpoint "
                          f"({_MAX_FILE_BYTES} at most)")
    return blob


def _run(action: Callable[[CheckpointStore, Settings], Awaitable[T]]) -> T:
    settings = Settings()
    key = checkpoint.signing_key(
        settings.checkpoint_key.get_secret_value() if settings.checkpoint_key else None)

    async def go() -> T:
        await check_redis(settings)
        client = make_redis(settings, socket_timeout=5.0, socket_connect_timeout=5.0)
        try:
            store = CheckpointStore(client, key, settings.checkpoint_keep, settings.app_id,
                                    settings.topic(constants.EVENTS), settings.redis_prefix)
            return await action(store, settings)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@app.command("list")
def list_() -> None:
    """Every (model, partition) with its versions' offsets and ages."""
    async def action(store: CheckpointStore, _: Settings) -> None:
        table = Table("model", "partition", "versions", "newest offset", "learned", "age (s)",
                      "refused")
        for partition, model in await store.stored():
            headers = await store.headers(partition, model)
            good = [h for h in headers if isinstance(h, Header)]
            newest = good[0] if good else None
            table.add_row(model, str(partition), str(len(headers)),
                          str(newest.offset) if newest else "-",
                          str(newest.n_learned) if newest else "-",
                          f"{time.time() - newest.created_at:.0f}" if newest else "-",
                          str(len(headers) - len(good)))
        Console().print(table)
    _run(action)


@app.command()
def show(model: str, partition: int,
         version: int = typer.Option(0, help="0 is the newest.")) -> None:
    """One version's header and the learner it holds."""
    async def action(store: CheckpointStore, _: Settings) -> None:
        blob = _version(await store.versions(partition, model), model, partition, version)
        header, learner = checkpoint.load(blob, store.where(partition, model), store.key)
        typer.echo(f"model {header.model} partition {header.partition} version {version}")
        typer.echo(f"  offset {header.offset}  created {_when(header.created_at)}  "
                   f"bytes {len(blob)}")
        typer.echo(f"  written by {header.versions()}")
        typer.echo(f"  codec {header.codec}" + (f" ({header.size} bytes uncompressed)"
                                                if header.size >= 0 else ""))
        typer.echo(f"  pipeline {learner.spec.pipeline}")
        typer.echo(f"  learned {learner.n_learned}  scored {learner.n_scored}  "
                   f"resets {learner.n_resets}  {learner.metric}")
        typer.echo(f"  ADWIN width {learner.watcher.width} mean {learner.watcher.mean:.4f}  "
                   f"last drift {learner.last_alert}")
    _run(action)


@app.command()
def rollback(model: str, partition: int,
             steps: int = typer.Option(1, help="Versions to drop."),
             replay: bool = typer.Option(True, help="Replay the events after the older "
                                         "version (default); --no-replay keeps the stream "
                                         "position and only reverts the model."),
             force: bool = typer.Option(False, help=_FORCE)) -> None:
    """Make an older version the newest. Refused while a worker of the group runs."""
    async def action(store: CheckpointStore, settings: Settings) -> None:
        await _no_worker(settings, force, "roll back")
        position = (await store.headers(partition, model))[0]
        header = await store.rollback(partition, model, steps)
        if not replay and isinstance(position, Header):
            blob = (await store.versions(partition, model))[0]
            await store.push(partition, model, position.offset, checkpoint.rebrand(
                blob, store.key, store.where(partition, model), position.offset, store.key,
                time.time()))
        typer.echo(f"model {model} partition {partition} rolled back to offset {header.offset} "
                   f"({header.n_learned} learned){'' if replay else '; position kept'}")
    _run(action)


@app.command()
def export(model: str, partition: int, file: Path,
           version: int = typer.Option(0, help="0 is the newest.")) -> None:
    """Write one version, still signed, to FILE."""
    async def action(store: CheckpointStore, _: Settings) -> None:
        blob = _version(await store.versions(partition, model), model, partition, version)
        header, _ = checkpoint.read_header(blob, store.key)
        file.write_bytes(blob)
        typer.echo(f"exported model {model} partition {partition} offset {header.offset} "
                   f"to {file}")
    _run(action)


@app.command("import")
def import_(file: Path, model: str, partition: int,
            source_key_env: str = typer.Option(
                "DRIFTLINE_CHECKPOINT_KEY",
                help="Environment variable holding the key FILE was signed with."),
            force: bool = typer.Option(False, help=_FORCE)) -> None:
    """Verify FILE, load it through the allow-list, check it is a learner of MODEL as the
    models file (``DRIFTLINE_MODELS``) describes it, and make it MODEL's newest version on
    PARTITION.

    The model resumes at the partition's current end: it learns from new events only.
    Refused while a worker of the group runs.
    """
    async def action(store: CheckpointStore, settings: Settings) -> None:
        await _no_worker(settings, force, "import")
        spec = load_models(settings.models).models.get(model)
        if spec is None:
            raise ConfigError(f"model {model} is not in the models file: add it first")
        source_key = checkpoint.signing_key(os.environ.get(source_key_env), source_key_env)
        blob = _read_bounded(file)
        offset = await _end_offset(settings, partition) - 1
        moved = checkpoint.rebrand(blob, source_key, store.where(partition, model), offset,
                                   store.key, time.time(), spec=spec)
        await store.push(partition, model, offset, moved)
        typer.echo(f"imported {file} as model {model} partition {partition} at offset {offset}")
    _run(action)


async def _end_offset(settings: Settings, partition: int) -> int:
    await check_kafka(settings)
    consumer = make_reader(settings)
    try:
        await consumer.start()
        tp = TopicPartition(settings.topic(constants.EVENTS), partition)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def group_members(settings: Settings) -> list[str]:
    """The members of consumer group ``DRIFTLINE_APP_ID`` (``client_id@host`` each), as
    the group's coordinator describes it; empty when no worker runs.

    Raises:
        ServiceError: Kafka is unreachable (:func:`~streams.commands.access.check_kafka`).
    """
    await check_kafka(settings)
    admin = make_admin(settings)
    deadline = time.monotonic() + _COORDINATOR_WAIT
    try:
        await admin.start()
        while True:  # a fresh broker has no coordinator until __consumer_offsets exists
            try:
                responses = await admin.describe_consumer_groups([settings.app_id])
                break
            except KafkaError as exc:
                if not exc.retriable or time.monotonic() > deadline:
                    raise ServiceError(f"cannot describe consumer group {settings.app_id}: "
                                       f"{type(exc).__name__}") from None
                await asyncio.sleep(0.5)  # backoff while the coordinator loads
    finally:
        await admin.close()
    return sorted(f"{member['client_id']}@{member['client_host']}"
                  for response in responses for group in response.to_object()["groups"]
                  if group["group"] == settings.app_id for member in group["members"])


async def _no_worker(settings: Settings, force: bool, what: str) -> None:
    """Refuse (one line) to ``what`` while the group has members, unless ``force``."""
    if force:
        return
    members = await group_members(settings)
    if members:
        shown = ", ".join(members[:3]) + (f" and {len(members) - 3} more"
                                          if len(members) > 3 else "")
        raise DriftlineError(
            f"consumer group {settings.app_id} has {len(members)} active member"
            f"{'' if len(members) == 1 else 's'} ({shown}): stop its workers before you "
            f"{what}, or pass --force")
