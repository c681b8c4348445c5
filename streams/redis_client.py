"""The Redis client of the worker and the CLI, built from :class:`Settings`.

The one place that knows how to reach Redis; the caller that creates the client
closes it (``await client.aclose()``).

>>> from schemas.settings import Settings
>>> client = make_redis(Settings(redis_url="redis://h:1/2"))
>>> client.connection_pool.connection_kwargs["host"], client.connection_pool.connection_kwargs["db"]
('h', 2)
"""

import redis.asyncio as aioredis

from schemas.settings import Settings


def make_redis(settings: Settings, timeout: float = 2.0) -> aioredis.Redis:
    """An asyncio Redis client for ``settings.redis_url`` with ``timeout`` seconds for
    connecting and for each command (not connected until first used)."""
    return aioredis.Redis.from_url(settings.redis_url.get_secret_value(),
                                   socket_timeout=timeout, socket_connect_timeout=timeout)
