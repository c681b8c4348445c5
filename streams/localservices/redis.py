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
from streams.localservices.secure import Credentials

_HINT = "install Redis (Debian: apt-get install -y redis-server)"


@dataclass
class RedisServer:
    """A redis-server process; ``appendonly`` turns AOF persistence on."""

    data_dir: Path
    port: int
    appendonly: bool = False
    credentials: Credentials | None = field(default=None, repr=False)
    process: ManagedProcess | None = field(default=None, repr=False)

    @classmethod
    def create(cls, data_dir: Path, port: int | None = None, appendonly: bool = False,
               credentials: Credentials | None = None) -> "RedisServer":
        """A server on ``port`` (or a free one) keeping its files in ``data_dir``; with
        ``credentials`` it speaks TLS only and lets in only their ACL user."""
        return cls(data_dir=data_dir, port=claim_port(port, "redis"), appendonly=appendonly,
                   credentials=credentials)

    @property
    def url(self) -> str:
        """The ``redis://`` (``rediss://`` when secured) URL of database 0; never a password."""
        return f"{'rediss' if self.credentials else 'redis'}://{HOST}:{self.port}/0"

    def _secure_config(self) -> list[str]:
        """A config file (owner-only: it holds the password) for TLS and the ACL user."""
        creds = self.credentials
        if creds is None:
            return []
        tls = creds.tls
        conf = self.data_dir / "secure.conf"
        conf.touch(mode=0o600)
        conf.write_text("\n".join([
            "port 0", f"tls-port {self.port}", f"tls-cert-file {tls.server_cert}",
            f"tls-key-file {tls.server_key}", f"tls-ca-cert-file {tls.ca_cert}",
            "tls-auth-clients optional",  # a client certificate, if sent, must verify
            "user default off",
            f"user {creds.redis_user} on >{creds.redis_password} ~* &* +@all", ""]))
        return [str(conf)]

    def start(self, die_with_parent: bool, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers PING."""
        binary = require_executable("redis-server", _HINT)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Secured: a config file holds the TLS port and the ACL user; no plain port.
        port = ["--port", str(self.port)] if self.credentials is None else self._secure_config()
        argv = [binary, *port, "--bind", HOST, "--dir", str(self.data_dir),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "everysec", "--daemonize", "no", "--protected-mode", "yes"]
        self.process = ManagedProcess.spawn(argv, log_path=self.data_dir / "redis.log",
                                            die_with_parent=die_with_parent)
        if not wait_until(self.ping, timeout):
            self.stop()
            raise ServiceError(f"redis-server did not answer PING on port {self.port} "
                               f"within {timeout:.0f}s")

    def client_security(self) -> dict[str, object]:
        """redis-py keyword arguments of a client allowed in (empty for a plain server)."""
        creds = self.credentials
        if creds is None:
            return {}
        return {"ssl": True, "ssl_ca_certs": str(creds.tls.ca_cert),
                "username": creds.redis_user, "password": creds.redis_password}

    def ping(self) -> bool:
        """True when the server answers PING."""
        import redis

        client = redis.Redis(host=HOST, port=self.port, socket_connect_timeout=0.5,
                             **self.client_security())
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
