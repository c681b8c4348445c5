"""Real Kafka and Redis for the tests, started only when a test asks for them.

Order of choice for each service: an external one named in the environment
(``DRIFTLINE_TEST_KAFKA_BOOTSTRAP``, ``DRIFTLINE_TEST_REDIS_URL``), then
testcontainers when a Docker engine answers, else local processes (Kafka from
Maven-fetched jars, Debian's redis-server). Local processes die with pytest,
however it ends.
"""

import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.localservices.kafka import KafkaBroker, cluster_id_of, kafka_version
from streams.localservices.redis import RedisServer

# A test run started as a background job of a non-interactive shell (`cmd &` in a script,
# as CI runners may) inherits SIGINT ignored, and so would every process it starts: the
# Ctrl-C tests (demo, interrupted test run) would wait for a signal their child ignores.
# Ctrl-C behaves here as in a terminal: the default handler, which children get as default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass(frozen=True)
class KafkaService:
    """A broker the tests may use."""

    bootstrap: str
    cluster_id: str


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration is marked ``integration``."""
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)


def _docker_answers() -> bool:
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=2)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaService]:
    """A real Kafka broker for the whole session."""
    external = os.environ.get("DRIFTLINE_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield KafkaService(external, cluster_id_of(external))
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer(f"apache/kafka:{kafka_version()}") as container:
            bootstrap = container.get_bootstrap_server()
            yield KafkaService(bootstrap, cluster_id_of(bootstrap))
        return
    broker = KafkaBroker.create(tmp_path_factory.mktemp("kafka"))
    cluster_id = broker.start(die_with_parent=True, quick_start=True)
    try:
        yield KafkaService(broker.bootstrap, cluster_id)
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real redis-server (AOF on) for the whole session."""
    external = os.environ.get("DRIFTLINE_TEST_REDIS_URL")
    if external:
        yield external
        return
    if _docker_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7") as container:
            host = container.get_container_host_ip()
            yield f"redis://{host}:{container.get_exposed_port(6379)}/0"
        return
    server = RedisServer.create(tmp_path_factory.mktemp("redis"), appendonly=True)
    server.start(die_with_parent=True)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix no other test uses, so each test has its own topics."""
    return f"t{uuid.uuid4().hex[:10]}."
