"""Issue 12 §3 acceptance: a worker on Kafka SASL_SSL (SCRAM-SHA-512) and rediss:// with an
ACL user, both started secured by streams.localservices; clients without credentials are
refused; a wrong password stops start-up with one line; no secret ever shows."""

import asyncio
import signal
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError

from learners.checkpoint import Header
from schemas.outputs import DeadLetter, Prediction
from schemas.settings import Settings
from streams.checkpoint_store import CheckpointStore
from streams.kafka_security import kafka_security_kwargs
from streams.localservices.kafka import KafkaBroker
from streams.localservices.redis import RedisServer
from streams.localservices.secure import Credentials
from streams.localservices.workers import WorkerProcess, worker_env
from streams.redis_client import make_redis
from streams.topic_reader import read_topic
from tests.helpers import run_cli, wait_for

N = 2_000
MALFORMED = [b"not json", b'{"event_id": "x"}', b'{"event_id": "u", "model": "nope"}']


@dataclass(frozen=True)
class Secured:
    """The secured broker and redis-server of this module."""

    bootstrap: str
    redis_url: str
    creds: Credentials

    @property
    def settings(self) -> Settings:
        return Settings(kafka_bootstrap=self.bootstrap, redis_url=self.redis_url,
                        **self.creds.kafka_settings(), **self.creds.redis_settings())

    @property
    def security(self) -> dict[str, Any]:
        return kafka_security_kwargs(self.settings)

    def env(self, prefix: str, tmp: Path, **extra: str) -> dict[str, str]:
        return worker_env(self.bootstrap, self.redis_url, prefix, tmp,
                          **{**self.creds.env(), **extra})


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    base = tmp_path_factory.mktemp("secure")
    creds = Credentials.create(base / "creds")
    broker = KafkaBroker.create(base / "kafka", credentials=creds)
    server = RedisServer.create(base / "redis", appendonly=True, credentials=creds)
    broker.start(die_with_parent=True, quick_start=True)
    try:
        server.start(die_with_parent=True)
        try:
            yield Secured(broker.bootstrap, server.url, creds)
        finally:
            server.stop()
    finally:
        broker.stop()


@dataclass
class Run:
    """Everything one secured worker run produced."""

    prefix: str
    env: dict[str, str]
    predictions: list[Prediction]
    dead: list[bytes]
    checkpoints: dict[int, Header]
    redis_keys: list[bytes]
    texts: dict[str, str]  # where -> what it showed (log, /metrics, /models, CLI output)


async def _produce_raw(secured: Secured, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=secured.bootstrap, acks="all",
                                **secured.security)
    await producer.start()
    try:
        for i, payload in enumerate(MALFORMED):
            await producer.send_and_wait(topic, payload, key=f"bad-{i}".encode())
    finally:
        await producer.stop()


async def _checkpoints(secured: Secured, env: dict[str, str]) -> tuple[dict[int, Header],
                                                                        list[bytes]]:
    settings = Settings(**{**secured.settings.model_dump(), "redis_prefix": "tenant-a"})
    client = make_redis(settings, socket_timeout=5.0)
    try:
        store = CheckpointStore(client, env["DRIFTLINE_CHECKPOINT_KEY"].encode(), 5,
                                env["DRIFTLINE_APP_ID"], env["DRIFTLINE_TOPIC_PREFIX"] + "events",
                                prefix="tenant-a")
        newest = {}
        for partition, model in await store.stored():
            header = (await store.headers(partition, model))[0]
            assert isinstance(header, Header), header
            newest[partition] = header
        return newest, [key async for key in client.scan_iter(count=500)]
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def run(secured: Secured, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One worker at debug level: 2,000 events and 3 malformed messages end to end."""
    tmp = tmp_path_factory.mktemp("run")
    prefix = f"s{uuid.uuid4().hex[:8]}."
    env = secured.env(prefix, tmp, DRIFTLINE_LOG_LEVEL="debug",
                      DRIFTLINE_REDIS_PREFIX="tenant-a", DRIFTLINE_CHECKPOINT_EVERY="100",
                      DRIFTLINE_CHECKPOINT_KEY="ck-" + uuid.uuid4().hex + uuid.uuid4().hex,
                      DRIFTLINE_WEB_TOKEN="wt-" + uuid.uuid4().hex)
    worker = WorkerProcess(env, tmp / "worker.log").start()
    texts: dict[str, str] = {}
    try:
        produced = run_cli("produce", "--synthetic", "sea", "--n", str(N), "--no-progress",
                           env=env)
        assert produced.returncode == 0, produced.stderr
        texts["produce"] = produced.stdout + produced.stderr
        asyncio.run(_produce_raw(secured, prefix + "events"))
        predictions = asyncio.run(read_topic(secured.bootstrap, prefix + "predictions", N, 180,
                                             **secured.security))
        dead = asyncio.run(read_topic(secured.bootstrap, prefix + "deadletter", len(MALFORMED),
                                      60, **secured.security))

        def all_learned() -> tuple[dict[int, Header], list[bytes]] | None:
            found = asyncio.run(_checkpoints(secured, env))
            return found if sum(h.n_learned for h in found[0].values()) == N else None

        checkpoints, keys = wait_for(all_learned, 60, "checkpoints of all 2,000 events")
        port = env["DRIFTLINE_WEB_PORT"]
        for path in ("metrics", "models"):
            texts[f"/{path}"] = urllib.request.urlopen(
                f"http://127.0.0.1:{port}/{path}", timeout=5).read().decode()
        listed = run_cli("checkpoints", "list", env={**env, "COLUMNS": "200"})
        assert listed.returncode == 0, listed.stderr
        texts["checkpoints list"] = listed.stdout + listed.stderr
        assert worker.alive(), worker.log()[-3000:]
    finally:
        code = worker.stop(signal.SIGTERM)
    texts["worker log"] = worker.log()
    assert code == 0, texts["worker log"][-3000:]
    yield Run(prefix, env, [Prediction.model_validate_json(r.value) for r in predictions],
              [r.value for r in dead], checkpoints, keys, texts)


def test_secured_worker_scores_and_checkpoints_end_to_end(run):
    assert sorted(p.event_id for p in run.predictions) == sorted(f"sea-42-{i}" for i in range(N))
    assert {p.model for p in run.predictions} == {"default"}
    assert sorted(DeadLetter.model_validate_json(d).key for d in run.dead) == [
        "bad-0", "bad-1", "bad-2"]
    # Every learned event is in a verified checkpoint, under the deployment's own prefix.
    assert sum(h.n_learned for h in run.checkpoints.values()) == N
    assert run.redis_keys and all(k.startswith(b"tenant-a:") for k in run.redis_keys)
    assert "default" in run.texts["checkpoints list"]


def test_clients_without_credentials_are_refused(secured):
    async def kafka_refuses(**security: Any) -> None:
        for client in (AIOKafkaProducer(bootstrap_servers=secured.bootstrap,
                                        request_timeout_ms=3000, **security),
                       AIOKafkaConsumer("any", bootstrap_servers=secured.bootstrap,
                                        request_timeout_ms=3000, **security)):
            with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
                await asyncio.wait_for(client.start(), 30)
            await client.stop()

    asyncio.run(kafka_refuses())  # plaintext to the SASL_SSL listener
    asyncio.run(kafka_refuses(**kafka_security_kwargs(Settings(  # TLS but no SASL
        kafka_security_protocol="SSL", kafka_ssl_cafile=secured.creds.tls.ca_cert))))
    port = int(secured.redis_url.rsplit(":", 1)[1].split("/")[0])
    ca = str(secured.creds.tls.ca_cert)
    with redis.Redis(port=port, ssl=True, ssl_ca_certs=ca, socket_timeout=5) as anonymous:
        with pytest.raises(redis.AuthenticationError):
            anonymous.set("tenant-a:intruder", b"x")
        with pytest.raises(redis.AuthenticationError):
            anonymous.get("tenant-a:intruder")
    with redis.Redis(port=port, socket_timeout=5) as plain, pytest.raises(redis.ConnectionError):
        plain.set("tenant-a:intruder", b"x")
    with redis.Redis(port=port, ssl=True, ssl_ca_certs=ca, username=secured.creds.redis_user,
                     password=secured.creds.redis_password) as allowed:
        assert allowed.exists("tenant-a:intruder") == 0


async def _topics(secured: Secured) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=secured.bootstrap, **secured.security)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.mark.parametrize("wrong", ["DRIFTLINE_KAFKA_SASL_PASSWORD", "DRIFTLINE_REDIS_PASSWORD"])
def test_wrong_password_fails_start_up_with_one_line(secured, tmp_path, wrong):
    prefix = f"w{uuid.uuid4().hex[:8]}."
    env = secured.env(prefix, tmp_path, **{wrong: "not-the-password"})
    result = run_cli("worker", env=env, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    service = "Kafka" if "KAFKA" in wrong else "Redis"
    assert result.stderr.startswith(f"driftline: {service} at 127.0.0.1:"
                                    if service == "Kafka" else "driftline: Redis at rediss://")
    assert "refused the" in result.stderr and "credentials of user 'driftline'" in result.stderr
    assert "not-the-password" not in result.stderr
    assert not {t for t in asyncio.run(_topics(secured)) if t.startswith(prefix)}  # never ran


def test_no_secret_in_logs_metrics_models_cli_or_dead_letters(run, secured):
    secrets = {"checkpoint key": run.env["DRIFTLINE_CHECKPOINT_KEY"],
               "SASL password": secured.creds.kafka_password,
               "Redis password": secured.creds.redis_password,
               "web token": run.env["DRIFTLINE_WEB_TOKEN"]}
    places = {**run.texts, **{f"dead letter {i}": d.decode() for i, d in enumerate(run.dead)},
              "predictions": "\n".join(p.model_dump_json() for p in run.predictions[:50])}
    log = run.texts["worker log"]
    assert sum(" DEBUG " in line for line in log.splitlines()) >= 5, log[:2000]  # debug on
    leaks = [(secret, place) for secret, value in secrets.items()
             for place, text in places.items() if value in text]
    assert leaks == []
    # The test would see a leak: each secret is where it must be, in the worker's environment.
    assert all(value in run.env.values() or value in secured.creds.env().values()
               for value in secrets.values())


def test_sentinel_url_follows_a_failover(tmp_path):
    """redis+sentinel://: after the master dies and the sentinel promotes its replica, the
    same client writes to the new master, which holds what was written before."""
    from streams.localservices.ports import free_ports
    from streams.localservices.process import ManagedProcess

    master = RedisServer.create(tmp_path / "master")
    master.start(die_with_parent=True)
    replica_port, sentinel_port = free_ports(2)
    (tmp_path / "replica").mkdir()
    replica = ManagedProcess.spawn(
        ["redis-server", "--port", str(replica_port), "--bind", "127.0.0.1", "--save", "",
         "--dir", str(tmp_path / "replica"), "--replicaof", "127.0.0.1", str(master.port)],
        log_path=tmp_path / "replica.log", die_with_parent=True)
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor mym 127.0.0.1 {master.port} 1\n"
                    "sentinel down-after-milliseconds mym 1000\n"
                    "sentinel failover-timeout mym 10000\n")
    sentinel = ManagedProcess.spawn(["redis-server", str(conf), "--sentinel"],
                                    log_path=tmp_path / "sentinel.log", die_with_parent=True)
    settings = Settings(redis_url=f"redis+sentinel://127.0.0.1:{sentinel_port}/mym/0")
    plain = redis.Redis(port=replica_port)

    async def write(key: str) -> bool:
        client = make_redis(settings, socket_timeout=2.0, socket_connect_timeout=2.0)
        try:
            await client.set(key, b"v")
            return True
        except redis.RedisError:
            return False
        finally:
            await client.aclose()

    try:
        wait_for(lambda: asyncio.run(write("before")), 30, "a write through the sentinel")
        wait_for(lambda: plain.get("before") == b"v", 30, "replication of the first write")
        master.stop()
        wait_for(lambda: plain.info("replication")["role"] == "master", 60,
                 "the sentinel to promote the replica")
        wait_for(lambda: asyncio.run(write("after")), 30, "a write to the new master")
        assert plain.get("after") == b"v" and plain.get("before") == b"v"
    finally:
        plain.close()
        sentinel.stop()
        replica.stop()
        master.stop()
