"""Credentials of ``driftline services up --secure``: a fresh CA, a Kafka SCRAM user, a Redis
ACL user, random passwords, kept in one owner-only file so ``up`` can print them again.

>>> import tempfile
>>> creds = Credentials.create(Path(tempfile.mkdtemp()))
>>> env = creds.env()
>>> env["DRIFTLINE_KAFKA_SECURITY_PROTOCOL"], env["DRIFTLINE_KAFKA_SASL_MECHANISM"]
('SASL_SSL', 'SCRAM-SHA-512')
>>> Credentials.load(creds.folder) == creds
True
"""

import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streams.localservices.tls import TlsFiles, make_ca

MECHANISM = "SCRAM-SHA-512"
_FILE = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    """Who may use the secured local services, and the files TLS needs."""

    folder: Path
    tls: TlsFiles
    kafka_user: str
    kafka_password: str = field(repr=False)
    kafka_admin_password: str = field(repr=False)
    redis_user: str
    redis_password: str = field(repr=False)

    @classmethod
    def create(cls, folder: Path, user: str = "driftline") -> "Credentials":
        """New CA and passwords in ``folder`` (mode 700), saved for :meth:`load`."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        creds = cls(folder=folder, tls=make_ca(folder / "tls"), kafka_user=user,
                    kafka_password=secrets.token_hex(16),
                    kafka_admin_password=secrets.token_hex(16), redis_user=user,
                    redis_password=secrets.token_hex(16))
        path = folder / _FILE
        path.touch(mode=0o600)
        path.write_text(json.dumps(asdict(creds), default=str))
        return creds

    @classmethod
    def load(cls, folder: Path) -> "Credentials":
        """The credentials :meth:`create` saved in ``folder``."""
        data = json.loads((folder / _FILE).read_text())
        tls = data.pop("tls")
        data.pop("folder")
        return cls(folder=folder, tls=TlsFiles(**{
            k: v if k == "keystore_password" else Path(v) for k, v in tls.items()}), **data)

    def kafka_settings(self) -> dict[str, Any]:
        """:class:`~schemas.settings.Settings` fields of a client of the secured broker."""
        return {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": MECHANISM,
                "kafka_sasl_username": self.kafka_user,
                "kafka_sasl_password": self.kafka_password,
                "kafka_ssl_cafile": self.tls.ca_cert}

    def redis_settings(self) -> dict[str, Any]:
        """Settings fields of a client of the secured redis-server (URL aside)."""
        return {"redis_username": self.redis_user, "redis_password": self.redis_password,
                "redis_ssl_cafile": self.tls.ca_cert, "redis_ssl_certfile": self.tls.client_cert,
                "redis_ssl_keyfile": self.tls.client_key}

    def env(self, kafka: bool = True, redis: bool = True) -> dict[str, str]:
        """The ``DRIFTLINE_*`` variables of a client of Kafka and/or Redis."""
        fields = {**(self.kafka_settings() if kafka else {}),
                  **(self.redis_settings() if redis else {})}
        return {f"DRIFTLINE_{name.upper()}": str(value) for name, value in fields.items()}
