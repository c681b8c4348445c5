"""Debian's ``redis-server`` on a free loopback port in a folder of its own.

>>> server = RedisServer(data_dir=Path("/tmp/example"), port=6390)
>>> server.url
'redis://127.0.0.1:6390/0'
"""

from dataclasses import dataclass, field
from pathlib import Path

from streams.exceptions import ServiceError
from streams.localservices.ports import HOST, claim_port
from streams.localservices.process import ManagedProcess, require_executable, wait_until

_HINT = "install Redis (Debian: apt-get install -y redis-server)"


@dataclass
class RedisServer:
    """A redis-server process; ``appendonly`` turns AOF persistence on."""

    data_dir: Path
    port: int
    appendonly: bool = False
    process: ManagedProcess | None = field(default=None, repr=False)

    @classmethod
    def create(cls, data_dir: Path, port: int | None = None,
               appendonly: bool = False) -> "RedisServer":
        """A server on ``port`` (or a free one) keeping its files in ``data_dir``."""
        return cls(data_dir=data_dir, port=claim_port(port, "redis"), appendonly=appendonly)

    @property
    def url(self) -> str:
        """The ``redis://`` URL of database 0."""
        return f"redis://{HOST}:{self.port}/0"

    def start(self, die_with_parent: bool, timeout: float = 20.0) -> None:
        """Start the server and wait until it answers PING."""
        binary = require_executable("redis-server", _HINT)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", HOST, "--dir", str(self.data_dir),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "everysec", "--daemonize", "no", "--protected-mode", "yes"]
        self.process = ManagedProcess.spawn(argv, log_path=self.data_dir / "redis.log",
                                            die_with_parent=die_with_parent)
        if not wait_until(self.ping, timeout):
            self.stop()
            raise ServiceError(f"redis-server did not answer PING on port {self.port} "
                               f"within {timeout:.0f}s")

    def ping(self) -> bool:
        """True when the server answers PING."""
        import redis

        client = redis.Redis(host=HOST, port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process is not None:
            self.process.stop(timeout=10.0)
