"""make_redis: which connection options each URL and setting produces (nothing connects)."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.exceptions import ConfigError
from schemas.settings import Settings
from streams.redis_client import make_redis, sentinel_address


def options(**settings: object) -> dict[str, object]:
    client = make_redis(Settings(**settings), socket_timeout=2.0)
    try:
        return dict(client.connection_pool.connection_kwargs)
    finally:
        asyncio.run(client.aclose())


def test_settings_credentials_and_tls_reach_the_connection(tmp_path):
    kw = options(redis_url="rediss://h:6380/3", redis_username="app", redis_password="pw",
                 redis_ssl_cafile=tmp_path / "ca.pem")
    assert (kw["host"], kw["port"], kw["db"]) == ("h", 6380, 3)
    assert (kw["username"], kw["password"]) == ("app", "pw")
    assert kw["ssl_ca_certs"] == str(tmp_path / "ca.pem")
    assert kw["socket_timeout"] == 2.0


def test_the_urls_credentials_win():
    kw = options(redis_url="redis://u:from-url@h:6379/0", redis_username="app",
                 redis_password="from-settings")
    assert (kw["username"], kw["password"]) == ("u", "from-url")


def test_tls_files_for_a_plain_url_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="not rediss://"):
        make_redis(Settings(redis_url="redis://h:6379/0", redis_ssl_cafile=tmp_path / "ca"))


def test_sentinels_from_settings_name_the_service():
    client = make_redis(Settings(redis_sentinels="s1:26379,s2:26380",
                                 redis_sentinel_service="mym", redis_password="pw"))
    try:
        assert client.connection_pool.service_name == "mym"
        assert [c.connection_pool.connection_kwargs["port"]
                for c in client.sentinel.sentinels] == [26379, 26380]
        assert client.connection_pool.connection_kwargs["password"] == "pw"
    finally:
        asyncio.run(client.aclose())


def test_a_sentinel_url_needs_a_service():
    with pytest.raises(ConfigError, match="service"):
        sentinel_address("redis+sentinel://s1:26379")


hosts = st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
                           st.integers(1, 65535)), min_size=1, max_size=4)


@given(hosts, st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True), st.integers(0, 15))
def test_sentinel_urls_round_trip(sentinels, service, db):
    netloc = ",".join(f"{h}:{p}" for h, p in sentinels)
    assert sentinel_address(f"redis+sentinel://{netloc}/{service}/{db}") == (
        sentinels, service, db, None, None)
