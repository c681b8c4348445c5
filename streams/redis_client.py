"""The one place a Redis client is made, from :class:`Settings`.

``DRIFTLINE_REDIS_URL`` may be ``redis://``, ``rediss://`` (TLS, verified against
``DRIFTLINE_REDIS_SSL_CAFILE``, client certificate from ``..._CERTFILE``/``..._KEYFILE``),
or ``redis+sentinel://[user:password@]host:port,host:port/service[/db]``
(``rediss+sentinel://`` for TLS); ``DRIFTLINE_REDIS_SENTINELS`` +
``DRIFTLINE_REDIS_SENTINEL_SERVICE`` name sentinels without changing the URL.
``DRIFTLINE_REDIS_USERNAME`` / ``DRIFTLINE_REDIS_PASSWORD`` apply unless the URL has its own.

>>> sentinel_address("redis+sentinel://u:p%40ss@s1:26379,s2/mymaster/2")
([('s1', 26379), ('s2', 26379)], 'mymaster', 2, 'u', 'p@ss')
"""

from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from schemas.exceptions import ConfigError, DriftlineError
from schemas.settings import Settings

_SENTINEL_PORT = 26379


class _SentinelRedis(aioredis.Redis):
    """A client of the sentinels' current master whose ``aclose`` closes them too."""

    sentinel: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for client in self.sentinel.sentinels if self.sentinel else ():
            await client.aclose()


def sentinel_address(url: str) -> tuple[list[tuple[str, int]], str, int, str | None, str | None]:
    """(sentinels, service, db, username, password) of a ``redis+sentinel://`` URL.

    Raises:
        ConfigError: no host or no service name.
    """
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    user, _, password = credentials.partition(":")
    sentinels = []
    for item in filter(None, hosts.split(",")):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
        sentinels.append((host, int(port) if port else _SENTINEL_PORT))
    path = [p for p in parts.path.split("/") if p]
    if not sentinels or not path:
        raise ConfigError("a sentinel URL reads redis+sentinel://host:port,host:port/service/db")
    return (sentinels, path[0], int(path[1]) if len(path) > 1 else 0,
            unquote(user) or None, unquote(password) or None)


def make_redis(settings: Settings, **timeouts: Any) -> aioredis.Redis:
    """A ``redis.asyncio`` client for ``settings``; ``timeouts`` (``socket_timeout``,
    ``socket_connect_timeout``, ...) go to every connection.

    Nothing connects until the first command. Close it with ``await client.aclose()``.

    Raises:
        ConfigError: TLS files given for a plain ``redis://`` URL, a bad sentinel URL, or
            a URL redis-py cannot read (said without the URL).
    """
    try:
        return _make_redis(settings, timeouts)
    except ValueError as exc:  # its text may quote the URL (and a password in it)
        if isinstance(exc, DriftlineError):
            raise
        raise ConfigError("DRIFTLINE_REDIS_URL is not a valid Redis URL (expected "
                          "redis[s]://[[user]:password@]host[:port][/db][?option=value])"
                          ) from None


def _make_redis(settings: Settings, timeouts: dict[str, Any]) -> aioredis.Redis:
    url = settings.redis_url.get_secret_value()
    scheme = urlsplit(url).scheme
    tls = {name: str(path) for name, path in (("ssl_ca_certs", settings.redis_ssl_cafile),
                                              ("ssl_certfile", settings.redis_ssl_certfile),
                                              ("ssl_keyfile", settings.redis_ssl_keyfile))
           if path is not None}
    secure = scheme in ("rediss", "rediss+sentinel")
    if tls and not secure:
        raise ConfigError("DRIFTLINE_REDIS_SSL_* files are set but DRIFTLINE_REDIS_URL is not "
                          "rediss:// (or rediss+sentinel://)")
    options: dict[str, Any] = {**timeouts, **tls}
    if settings.redis_username:
        options["username"] = settings.redis_username
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if scheme.endswith("+sentinel") or settings.redis_sentinels:
        if scheme.endswith("+sentinel"):
            sentinels, service, db, user, password = sentinel_address(url)
            options.update({k: v for k, v in (("username", user), ("password", password)) if v})
        else:
            sentinels, service, db, _, _ = sentinel_address(
                f"redis+sentinel://{settings.redis_sentinels}/"
                f"{settings.redis_sentinel_service or ''}/{urlsplit(url).path.strip('/') or 0}")
        link = {**timeouts, **tls, **({"ssl": True} if secure else {})}
        sentinel = Sentinel(sentinels, sentinel_kwargs=link, **link)
        client = sentinel.master_for(service, redis_class=_SentinelRedis, db=db, **options)
        client.sentinel = sentinel
        return client
    return aioredis.Redis.from_url(url, **options)
