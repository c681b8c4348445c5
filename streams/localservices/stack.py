"""Kafka + Redis for development: ``driftline services up|down|status``.

The processes outlive the command that started them; their pids and
addresses are kept in ``run_dir()/services.json`` so that ``down`` works
from another shell. A service the user points elsewhere
(``DRIFTLINE_KAFKA_BOOTSTRAP``, ``DRIFTLINE_REDIS_URL``) is not started; the
addresses ``up`` printed itself are not "elsewhere", so ``up`` is idempotent in a shell
that evaluated its exports.

>>> Addresses(kafka_bootstrap="127.0.0.1:9092", redis_url="redis://127.0.0.1:6379/0").as_env()
{'DRIFTLINE_KAFKA_BOOTSTRAP': '127.0.0.1:9092', 'DRIFTLINE_REDIS_URL': 'redis://127.0.0.1:6379/0'}
"""

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from streams.exceptions import ServiceError
from streams.localservices.kafka import KafkaBroker
from streams.localservices.paths import run_dir
from streams.localservices.process import ManagedProcess
from streams.localservices.redis import RedisServer
from streams.localservices.secure import Credentials

KAFKA_ENV = "DRIFTLINE_KAFKA_BOOTSTRAP"
REDIS_ENV = "DRIFTLINE_REDIS_URL"
_STATE = "services.json"
#: Addresses of services ``up`` started that are gone (stopped by ``down`` or dead): the
#: exports a shell still holds after ``down`` are not "elsewhere".
_GONE = "gone.json"


@dataclass(frozen=True)
class Addresses:
    """Where the running services answer."""

    kafka_bootstrap: str
    redis_url: str
    security: dict[str, str] = field(default_factory=dict, repr=False)

    def as_env(self) -> dict[str, str]:
        """The environment variables a worker reads these addresses (and, for secured
        services, its credentials) from."""
        return {KAFKA_ENV: self.kafka_bootstrap, REDIS_ENV: self.redis_url, **self.security}


def _state_path() -> Path:
    return run_dir() / _STATE


def _read_state() -> dict[str, dict[str, object]]:
    path = _state_path()
    return json.loads(path.read_text()) if path.exists() else {}


def _alive(entry: dict[str, object]) -> bool:
    pid = entry.get("pid")
    return isinstance(pid, int) and ManagedProcess(pid=pid).alive()


def _credentials(state: dict[str, dict[str, object]], secure: bool) -> Credentials | None:
    """Those of the secured services still running, new ones if none runs, None if plain.

    Raises:
        ServiceError: a running service was started the other way (with/without --secure).
    """
    for name, entry in state.items():
        if bool(entry.get("secure")) != secure:
            how = "with" if entry.get("secure") else "without"
            raise ServiceError(f"{name} is running, started {how} --secure: run "
                               f"`driftline services down` first")
    if not secure:
        return None
    folder = run_dir() / "secure"
    if state:
        return Credentials.load(folder)
    shutil.rmtree(folder, ignore_errors=True)
    return Credentials.create(folder)


def up(kafka_port: int | None = None, redis_port: int | None = None,
       appendonly: bool = True, secure: bool = False) -> Addresses:
    """Start whatever is not already running or pointed elsewhere; return addresses.

    ``secure``: Kafka's listener is SASL_SSL (SCRAM-SHA-512) and redis-server speaks TLS
    to one ACL user only; :attr:`Addresses.security` then holds their credentials.
    """
    recorded = _read_state()
    state = {name: entry for name, entry in recorded.items() if _alive(entry)}
    gone = _gone() | {str(e["address"]) for n, e in recorded.items() if n not in state}
    base = run_dir()
    kafka = _pointed_elsewhere(state, "kafka", KAFKA_ENV, gone)
    redis_url = _pointed_elsewhere(state, "redis", REDIS_ENV, gone)
    creds = _credentials(state, secure)
    if not kafka and "kafka" not in state:
        shutil.rmtree(base / "kafka", ignore_errors=True)
        broker = KafkaBroker.create(base / "kafka", port=kafka_port, credentials=creds)
        broker.start(die_with_parent=False)
        assert broker.process is not None
        state["kafka"] = {"pid": broker.process.pid, "address": broker.bootstrap,
                          "secure": secure}
        _write_state(state)
    if not redis_url and "redis" not in state:
        server = RedisServer.create(base / "redis", port=redis_port, appendonly=appendonly,
                                    credentials=creds)
        server.start(die_with_parent=False)
        assert server.process is not None
        state["redis"] = {"pid": server.process.pid, "address": server.url, "secure": secure}
    _write_state(state)
    security = creds.env(kafka=not kafka, redis=not redis_url) if creds else {}
    return Addresses(kafka_bootstrap=kafka or str(state["kafka"]["address"]),
                     redis_url=redis_url or str(state["redis"]["address"]), security=security)


def _pointed_elsewhere(state: dict[str, dict[str, object]], name: str, env: str,
                      gone: set[str] | frozenset[str] = frozenset()) -> str | None:
    """The address in ``env`` when it is not that of the running service ``up`` started,
    nor of one it started that is gone.

    The exports ``up`` printed point at its own services: seeing them again (the README's
    ``eval "$(driftline services up)"`` run twice in one shell) is no reason to forget
    those services, and the services keep being recorded either way so ``down`` stops them.
    After ``down``, the same exports point at nothing: ``up`` starts new services (it used
    to print the dead addresses again and start nothing).

    >>> _pointed_elsewhere({"kafka": {"address": "127.0.0.1:9092"}}, "kafka", "UNSET_VAR")
    """
    pointed = os.environ.get(env)
    if not pointed or pointed in gone or (
            name in state and state[name].get("address") == pointed):
        return None
    return pointed


def _gone() -> set[str]:
    path = _state_path().with_name(_GONE)
    return set(json.loads(path.read_text())) if path.exists() else set()


def _write_state(state: dict[str, dict[str, object]]) -> None:
    tmp = _state_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(_state_path())


def status() -> dict[str, dict[str, object]]:
    """Each service started by ``up``, with its pid, address and whether it runs."""
    return {name: {**entry, "running": _alive(entry)} for name, entry in _read_state().items()}


def down() -> list[str]:
    """Stop every service ``up`` started; return the names stopped."""
    stopped = []
    state = _read_state()
    for name, entry in state.items():
        pid = entry.get("pid")
        if isinstance(pid, int) and _alive(entry):
            ManagedProcess(pid=pid).stop(timeout=20.0)
            stopped.append(name)
    gone = _gone() | {str(e["address"]) for e in state.values() if e.get("address")}
    if gone:
        _state_path().with_name(_GONE).write_text(json.dumps(sorted(gone)))
    _state_path().unlink(missing_ok=True)
    return stopped


__all__ = ["Addresses", "ServiceError", "down", "status", "up"]
