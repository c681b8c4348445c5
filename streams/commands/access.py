"""One connection to Kafka and a PING to Redis, before a command does its work.

A wrong address, password or certificate then ends a command (worker, produce, read,
checkpoints) with one line and exit code 1 instead of a traceback from inside a client.
Messages never hold a secret of the settings (:func:`_scrub`).
"""

import asyncio
import socket
import ssl
from urllib.parse import quote, urlsplit

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import AuthenticationFailedError, KafkaError, SaslAuthenticationFailed
from redis.exceptions import AuthenticationError, RedisError

from schemas.exceptions import ConfigError
from schemas.settings import Settings
from streams.exceptions import ServiceError
from streams.kafka_security import kafka_security_kwargs
from streams.redis_client import make_redis

_TIMEOUT = 10.0


#: Shorter secrets are not searched for in messages (see :func:`_scrub`).
_SCRUB_MIN = 4


def _scrub(text: str, settings: Settings) -> str:
    """``text`` with every secret of ``settings`` (as given, and URL-encoded) replaced by
    ``***``, on one line. A secret of fewer than :data:`_SCRUB_MIN` characters (or only
    blanks) is not searched for: replacing it everywhere would spell it out (``1`` masks
    ``127.0.0.1`` as ``***27.0.0.***``) — such a secret is no secret anyway.

    >>> _scrub("bad pw s3cret\\nmore p%40ss", Settings(kafka_sasl_password="s3cret",
    ...                                              redis_password="p@ss"))
    'bad pw *** more ***'
    >>> _scrub("cannot reach 127.0.0.1", Settings(redis_password="1"))
    'cannot reach 127.0.0.1'
    """
    for secret in (settings.kafka_sasl_password, settings.redis_password,
                   settings.redis_url, settings.checkpoint_key):
        value = "" if secret is None else secret.get_secret_value()
        if len(value.strip()) < _SCRUB_MIN:
            continue
        for form in sorted({value, quote(value, safe=""), quote(value)}, key=len, reverse=True):
            text = text.replace(form, "***")
    return " ".join(text.split())


async def check_kafka(settings: Settings) -> None:
    """Open one authenticated connection to a bootstrap broker, then close it.

    Raises:
        ConfigError: the broker refused the SASL credentials or its certificate does not
            verify.
        ServiceError: no bootstrap broker answered.
    """
    security = kafka_security_kwargs(settings)
    last = "no bootstrap servers"
    for host, port, _ in collect_hosts(settings.kafka_bootstrap):
        try:
            conn = await asyncio.wait_for(create_conn(
                host, port, client_id=f"{settings.app_id}-check",
                request_timeout_ms=int(_TIMEOUT * 1000), **security), _TIMEOUT)
        except (SaslAuthenticationFailed, AuthenticationFailedError):
            raise ConfigError(
                f"Kafka at {host}:{port} refused the {settings.kafka_sasl_mechanism} "
                f"credentials of user {settings.kafka_sasl_username!r}: check "
                "DRIFTLINE_KAFKA_SASL_USERNAME and DRIFTLINE_KAFKA_SASL_PASSWORD") from None
        except ssl.SSLCertVerificationError as exc:
            raise ConfigError(f"Kafka at {host}:{port}: its certificate does not verify "
                              f"against DRIFTLINE_KAFKA_SSL_CAFILE ({exc.verify_message})"
                              ) from None
        except (TimeoutError, OSError, KafkaError) as exc:
            last = f"{host}:{port}: {exc or exc.__class__.__name__}"
            continue
        conn.close()
        return
    raise ServiceError(_scrub(
        f"cannot reach Kafka at {settings.kafka_bootstrap} with "
        f"DRIFTLINE_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} ({last})",
        settings))


async def check_redis(settings: Settings) -> None:
    """PING Redis with the worker's credentials.

    Raises:
        ConfigError: Redis refused the user name or password.
        ServiceError: Redis did not answer (address, TLS, sentinel).
    """
    client = make_redis(settings, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT)
    parts = urlsplit(settings.redis_url.get_secret_value())  # readable: make_redis read it
    try:
        where = f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.port else parts.scheme
    except ValueError:  # a port redis-py reads but urllib does not
        where = parts.scheme
    try:
        await client.ping()
    except AuthenticationError as exc:
        raise ConfigError(_scrub(
            f"Redis at {where} refused the credentials of user "
            f"{parts.username or settings.redis_username or 'default'!r} ({exc}): check "
            "DRIFTLINE_REDIS_USERNAME and DRIFTLINE_REDIS_PASSWORD (or the URL's)",
            settings)) from None
    except RedisError as exc:
        raise ServiceError(_scrub(f"cannot reach Redis at {where}: {exc}", settings)) from None
    finally:
        await client.aclose()


async def check_access(settings: Settings) -> None:
    """Kafka, then Redis when checkpoints are on: see :func:`check_kafka`."""
    await check_kafka(settings)
    if settings.checkpoints:
        await check_redis(settings)


def check_web_port(settings: Settings) -> None:
    """Refuse to start when the web server's address (``/metrics``, ``/health``) is taken,
    e.g. by another worker on this host: one line instead of Faust's traceback.

    Raises:
        ServiceError: the port cannot be bound (in use, or not allowed).

    >>> check_web_port(Settings(web_port=0))  # any free port: nothing to check
    """
    if settings.web_port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.web_host, settings.web_port, type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            probe.bind(address)
    except OSError as exc:
        raise ServiceError(
            f"the web port {settings.web_host}:{settings.web_port} cannot be used "
            f"({exc.strerror or exc}): another worker on this host? Give each worker its "
            "own DRIFTLINE_WEB_PORT") from None
