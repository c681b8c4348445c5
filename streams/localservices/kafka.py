"""A single-node KRaft Apache Kafka broker run from Maven-fetched jars.

>>> broker = KafkaBroker(data_dir=Path("/tmp/example"), port=9092, controller_port=9093)
>>> broker.bootstrap
'127.0.0.1:9092'
"""

import asyncio
import base64
import logging
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from streams.exceptions import ServiceError
from streams.localservices.paths import cache_dir, ops_dir
from streams.localservices.ports import HOST, claim_port, free_ports
from streams.localservices.process import ManagedProcess, require_executable
from streams.localservices.secure import MECHANISM, Credentials

# The storage formatter runs for a second or two: the client compiler alone and the serial
# collector start it about twice as fast as the JVM's server defaults.
_SHORT_LIVED_JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
_MVN_HINT = "install Apache Maven (Debian: apt-get install -y maven)"
_JAVA_HINT = "install a Java 17+ runtime (Debian: apt-get install -y openjdk-17-jre-headless)"
_LOG4J = """log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def kafka_version() -> str:
    """The Kafka version pinned in ``ops/kafka/pom.xml``."""
    tree = ET.parse(ops_dir() / "kafka" / "pom.xml")
    node = tree.find("{http://maven.apache.org/POM/4.0.0}properties/"
                     "{http://maven.apache.org/POM/4.0.0}kafka.version")
    if node is None or not node.text:
        raise ServiceError("ops/kafka/pom.xml has no <kafka.version> property")
    return node.text.strip()


def ensure_jars() -> Path:
    """Fetch Kafka's jars once into the cache and return their folder.

    A second call finds the ``.complete`` marker and downloads nothing.
    """
    libs = cache_dir() / f"kafka-{kafka_version()}" / "libs"
    if (libs / ".complete").exists():
        return libs
    require_java()
    mvn = require_executable("mvn", _MVN_HINT)
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    cmd = [mvn, "-q", "-B", "-f", str(ops_dir() / "kafka" / "pom.xml"),
           "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
           "-DincludeScope=runtime"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        raise ServiceError(f"mvn could not fetch Kafka's jars: {last[0]}")
    (staging / ".complete").write_text(kafka_version())
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


def require_java() -> str:
    """Path of a Java 17+ ``java``, or a one-line :class:`ServiceError`."""
    java = require_executable("java", _JAVA_HINT)
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if match is None or int(match.group(1)) < 17:
        raise ServiceError(f"java at {java} is older than 17: {_JAVA_HINT}")
    return java


def cluster_id_of(bootstrap: str, timeout: float = 5.0, **security: Any) -> str:
    """Ask the broker for its metadata and return the cluster id it reports
    (``security``: :func:`~streams.kafka_security.kafka_security_kwargs` of a secured one)."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def ask() -> str:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap,
                                    request_timeout_ms=int(timeout * 1000), **security)
        await asyncio.wait_for(admin.start(), timeout)
        try:
            info = await asyncio.wait_for(admin.describe_cluster(), timeout)
        finally:
            await admin.close()
        return str(info["cluster_id"])

    return asyncio.run(ask())


def _accepts(port: int) -> bool:
    """True when a TCP connection to ``127.0.0.1:port`` succeeds."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class KafkaBroker:
    """One broker+controller KRaft node listening on ``127.0.0.1:port``."""

    data_dir: Path
    port: int
    controller_port: int
    credentials: Credentials | None = field(default=None, repr=False)
    process: ManagedProcess | None = field(default=None, repr=False)

    @classmethod
    def create(cls, data_dir: Path, port: int | None = None,
               credentials: Credentials | None = None) -> "KafkaBroker":
        """A broker on ``port`` (or a free one) storing its log under ``data_dir``; with
        ``credentials`` its one listener is SASL_SSL (SCRAM-SHA-512) instead of PLAINTEXT."""
        if port is None:
            port, controller_port = free_ports(2)
        else:
            port = claim_port(port, "kafka")
            controller_port = next(p for p in free_ports(2) if p != port)
        return cls(data_dir=data_dir, port=port, controller_port=controller_port,
                   credentials=credentials)

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` clients bootstrap from."""
        return f"{HOST}:{self.port}"

    def start(self, die_with_parent: bool, timeout: float = 180.0,
              quick_start: bool = False) -> str:
        """Format storage, start the JVM and wait for metadata; return the cluster id.

        ``timeout`` (s) is a deadline, not a wait: on a loaded 2-core machine a JVM broker
        can take a minute to answer, an idle one answers in seconds. ``quick_start``: the
        JVM's client compiler only, which answers about a third sooner and costs a third
        less CPU to start, for short-lived brokers (tests), not for benchmarks."""
        java = require_java()
        libs = ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        template = Template((ops_dir() / "kafka" / "server.properties.template").read_text())
        props.write_text(template.substitute(
            port=self.port, controller_port=self.controller_port,
            log_dir=self.data_dir / "log") + self._secure_properties())
        props.chmod(0o600)  # a secured broker's file holds its keystore and admin passwords
        (self.data_dir / "log4j.properties").write_text(_LOG4J)
        classpath = f"{libs}/*"
        cluster_id = "-"
        while cluster_id.startswith("-"):  # else the storage tool reads it as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        fmt = subprocess.run(
            [java, *_SHORT_LIVED_JVM, "-cp", classpath, "kafka.tools.StorageTool", "format",
             "--ignore-formatted",
             "-t", cluster_id, "-c", str(props), *self._scram_users()],
            capture_output=True, text=True, check=False)
        if fmt.returncode != 0:
            raise ServiceError(f"kafka storage format failed: {fmt.stderr.strip()[-300:]}")
        self.process = ManagedProcess.spawn(
            [java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC",
             *(["-XX:TieredStopAtLevel=1"] if quick_start else []),
             f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
             "-cp", classpath, "kafka.Kafka", str(props)],
            log_path=self.data_dir / "broker.log", die_with_parent=die_with_parent)
        return self._wait_ready(timeout)

    def client_security(self) -> dict[str, Any]:
        """aiokafka keyword arguments of a client allowed in (empty for a plain broker)."""
        if self.credentials is None:
            return {}
        from schemas.settings import Settings
        from streams.kafka_security import kafka_security_kwargs

        return kafka_security_kwargs(Settings(**self.credentials.kafka_settings()))

    def _scram_users(self) -> list[str]:
        """StorageTool's ``--add-scram`` arguments: the client user and the broker's own."""
        creds = self.credentials
        if creds is None:
            return []
        return [arg for user, password in ((creds.kafka_user, creds.kafka_password),
                                           ("admin", creds.kafka_admin_password))
                for arg in ("--add-scram", f"{MECHANISM}=[name={user},password={password}]")]

    def _secure_properties(self) -> str:
        """Overrides making the client and inter-broker listener SASL_SSL (the controller's
        stays PLAINTEXT on loopback); empty for a plain broker."""
        creds = self.credentials
        if creds is None:
            return ""
        tls = creds.tls
        jaas = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="admin" password="{creds.kafka_admin_password}";')
        return "\n".join([
            "", "# --secure: SASL_SSL with SCRAM-SHA-512, a throw-away CA",
            f"listeners=SASL_SSL://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            f"advertised.listeners=SASL_SSL://{HOST}:{self.port}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
            "inter.broker.listener.name=SASL_SSL",
            f"sasl.enabled.mechanisms={MECHANISM}",
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config={jaas}",
            "ssl.keystore.type=PKCS12", f"ssl.keystore.location={tls.keystore}",
            f"ssl.keystore.password={tls.keystore_password}",
            f"ssl.key.password={tls.keystore_password}",
            "ssl.truststore.type=PEM", f"ssl.truststore.location={tls.ca_cert}",
            "ssl.client.auth=none", ""])

    def _wait_ready(self, timeout: float) -> str:
        import time

        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and not self.process.alive():
                tail = (self.data_dir / "broker.log").read_text(errors="replace")[-400:]
                raise ServiceError(f"kafka exited during start-up: {tail.strip()}")
            if not _accepts(self.port):
                time.sleep(0.1)  # polling the port with a deadline, not synchronising
                continue
            try:
                return cluster_id_of(self.bootstrap, timeout=10.0, **self.client_security())
            except Exception as exc:
                last_error = exc
                time.sleep(0.2)
        self.stop()
        raise ServiceError(f"kafka did not answer a metadata request within {timeout:.0f}s: "
                           f"{last_error!r}")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after a grace period)."""
        if self.process is not None:
            self.process.stop(timeout=20.0)
