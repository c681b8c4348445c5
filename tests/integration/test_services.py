"""The real broker and redis-server answer: round-trips, cluster id, clean shutdown."""

import asyncio

import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.localservices.kafka import cluster_id_of


def test_round_trip_across_three_partitions(kafka, topic_prefix):
    topic = f"{topic_prefix}roundtrip"
    sent = {p: [f"p{p}-m{i}".encode() for i in range(7)] for p in range(3)}

    async def scenario() -> dict[int, list[bytes]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
        await producer.start()
        try:
            for partition, values in sent.items():
                for value in values:
                    await producer.send_and_wait(topic, value, key=b"k", partition=partition)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
        tps = [TopicPartition(topic, p) for p in range(3)]
        await consumer.start()
        got: dict[int, list[bytes]] = {p: [] for p in range(3)}
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            async with asyncio.timeout(30):
                while sum(map(len, got.values())) < 21:
                    batch = await consumer.getmany(timeout_ms=500)
                    for tp, records in batch.items():
                        got[tp.partition].extend(r.value for r in records)
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(scenario()) == sent


def test_broker_reports_its_cluster_id(kafka):
    cluster_id = cluster_id_of(kafka.bootstrap)
    assert cluster_id == kafka.cluster_id
    assert len(cluster_id) == 22  # a base64 UUID, as StorageTool formats it


def test_redis_writes_and_reads(redis_url):
    client = redis.Redis.from_url(redis_url)
    try:
        client.set("driftline:test", b"\x00\xffvalue")
        client.rpush("driftline:list", 1, 2, 3)
        assert client.get("driftline:test") == b"\x00\xffvalue"
        assert client.lrange("driftline:list", 0, -1) == [b"1", b"2", b"3"]
        assert client.dbsize() == 2
    finally:
        client.close()


def test_services_up_secure_exports_what_a_client_needs(tmp_path):
    """`services up --secure`: the eval'd exports let a client into Kafka (SASL_SSL) and
    Redis (TLS + ACL user); a second `up` prints the same; `status` shows no password;
    plain `up` refuses while secured services run."""
    import os
    import shlex

    from schemas.settings import Settings
    from streams.kafka_security import kafka_security_kwargs
    from streams.redis_client import make_redis
    from tests.helpers import run_cli

    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env["DRIFTLINE_RUN_DIR"] = str(tmp_path / "run")
    up = run_cli("services", "up", "--secure", env=env)
    assert up.returncode == 0, up.stderr
    try:
        exports = {}
        for line in up.stdout.splitlines():
            name, value = line.removeprefix("export ").split("=", 1)
            exports[name] = shlex.split(value)[0]
        assert exports["DRIFTLINE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert exports["DRIFTLINE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert exports["DRIFTLINE_REDIS_URL"].startswith("rediss://")
        settings = Settings(**{k.removeprefix("DRIFTLINE_").lower(): v
                               for k, v in exports.items()})
        assert len(cluster_id_of(settings.kafka_bootstrap, **kafka_security_kwargs(settings))) == 22

        async def ping() -> bool:
            client = make_redis(settings, socket_timeout=5.0)
            try:
                return bool(await client.ping())
            finally:
                await client.aclose()
        assert asyncio.run(ping())
        again = run_cli("services", "up", "--secure", env=env)
        assert again.returncode == 0 and again.stdout == up.stdout
        status = run_cli("services", "status", env=env)
        secrets = [exports["DRIFTLINE_KAFKA_SASL_PASSWORD"], exports["DRIFTLINE_REDIS_PASSWORD"]]
        assert status.stdout.count("running") == 2
        assert not any(s in status.stdout + status.stderr for s in secrets)
        plain = run_cli("services", "up", env=env)
        assert plain.returncode == 1 and plain.stdout == ""
        assert plain.stderr.splitlines() == [
            "driftline: kafka is running, started with --secure: run `driftline services down` "
            "first"]
    finally:
        down = run_cli("services", "down", env=env)
    assert down.stdout.strip() == "stopped: kafka, redis"
