"""Every Kafka client Driftline makes — producer, consumers, admin — built from :class:`Settings`.

The one place that knows how to reach the brokers (:func:`connection`); worker,
CLI, bench and tests all build their clients here. The caller that creates a
client starts and closes it.

>>> s = Settings(kafka_bootstrap="k:9092", app_id="demo", topic_prefix="d.")
>>> connection(s)
{'bootstrap_servers': 'k:9092', 'security_protocol': 'PLAINTEXT'}
>>> consumer_options(s)["group_id"], consumer_options(s)["metadata_max_age_ms"]
('demo', 5000)
>>> producer_options(s)["acks"], producer_options(s, acks=1)["acks"]
('all', 1)
>>> producer_options(s)["linger_ms"]  # the worker's outputs are whole batches already
0
"""

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import TopicAlreadyExistsError, for_code

from schemas import constants
from schemas.exceptions import ConfigError
from schemas.settings import Settings
from streams.kafka_security import kafka_security_kwargs

log = logging.getLogger(__name__)


def connection(settings: Settings) -> dict[str, Any]:
    """The options every client needs to reach the cluster: bootstrap servers and the
    security settings (SASL / TLS, :func:`streams.kafka_security.kafka_security_kwargs`)."""
    return {"bootstrap_servers": settings.kafka_bootstrap, **kafka_security_kwargs(settings)}


def producer_options(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """An idempotent producer waiting for all in-sync replicas, sized for the largest
    message the worker fetches; ``overrides`` win.

    No linger: the worker hands over whole record batches
    (:class:`streams.output.OutputSender`), which aiokafka would otherwise hold for
    ``linger_ms`` before sending (a batch from ``create_batch`` is left open); every
    slice's acknowledgement, and so every event's latency, waited that long (measured:
    ``bench/latency.py``, docs/benchmarks.md)."""
    return {
        **connection(settings),
        "client_id": f"{settings.app_id}-output",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 0,
        "max_batch_size": 512 * 1024,
        "max_request_size": settings.max_fetch_bytes + 64 * 1024,
        **overrides,
    }


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A producer with :func:`producer_options` (not started)."""
    return AIOKafkaProducer(**producer_options(settings, **overrides))


def consumer_options(settings: Settings) -> dict[str, Any]:
    """The scoring consumer: a group member that never commits by itself, sees new
    partitions within ``metadata_max_age`` seconds, reads committed records only."""
    return {
        **connection(settings),
        "group_id": settings.app_id,
        "client_id": f"{settings.app_id}-scoring",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": settings.max_fetch_bytes,
        "fetch_max_bytes": max(settings.max_fetch_bytes, 50 * 1024 * 1024),
        "max_poll_records": settings.batch_max,
        "fetch_max_wait_ms": int(settings.batch_within * 1000) or 1,
        "isolation_level": "read_committed",
        "group_instance_id": settings.instance_id,
        "session_timeout_ms": int(settings.session_timeout * 1000),
        "heartbeat_interval_ms": int(settings.heartbeat_interval * 1000),
        "metadata_max_age_ms": int(settings.metadata_max_age * 1000),
        # co-partitioned topics (events, feedback): range gives a member the same
        # partition numbers of both (round-robin would split a partition's two topics)
        "partition_assignment_strategy": (RangePartitionAssignor,),
    }


def make_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The scoring consumer (:func:`consumer_options`), not started or subscribed."""
    return AIOKafkaConsumer(**consumer_options(settings))


def make_reader(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A plain consumer for tools, tests and the bench (no group unless ``overrides``
    give one; no auto-commit), not started."""
    return AIOKafkaConsumer(*topics, **{**connection(settings), "enable_auto_commit": False,
                                        **overrides})


def make_admin(settings: Settings) -> AIOKafkaAdminClient:
    """An admin client (not started)."""
    return AIOKafkaAdminClient(**connection(settings), client_id=f"{settings.app_id}-admin")


def subscribe(consumer: AIOKafkaConsumer, settings: Settings,
              listener: ConsumerRebalanceListener) -> None:
    """Subscribe to the events and feedback topics with ``listener`` told of every
    rebalance."""
    consumer.subscribe([settings.topic(constants.EVENTS), settings.topic(constants.FEEDBACK)],
                       listener=listener)


async def create_topics(settings: Settings, partitions: dict[str, int],
                        configs: dict[str, dict[str, str]] | None = None,
                        replication: int = 1) -> list[str]:
    """Create the topics of ``partitions`` (name -> partition count) that do not exist yet,
    each with ``configs[name]`` (default: messages up to ``max_fetch_bytes``); return the
    names created (existing topics are left as they are)."""
    default = {"max.message.bytes": str(settings.max_fetch_bytes)}
    admin = make_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(name, count, replication,
                           topic_configs=(configs or {}).get(name, default))
                  for name, count in partitions.items() if name not in existing]
        if not wanted:
            return []
        response = await admin.create_topics(wanted)
        return created_names(response.topic_errors)
    finally:
        await admin.close()


def created_names(topic_errors: list[tuple[Any, ...]]) -> list[str]:
    """The topics a CreateTopics response says were created; one that already exists
    (another worker, or ``driftline produce``, was faster) is not named.

    ``topic_errors``: (topic, error code[, message]) tuples of the response.

    >>> created_names([("d.events", 0), ("d.feedback", 36, "exists")])
    ['d.events']
    >>> created_names([("d.events", 37, "bad count")])
    Traceback (most recent call last):
    ...
    schemas.exceptions.ConfigError: cannot create topic d.events: InvalidPartitionsError (bad count)

    Raises:
        ConfigError: the broker refused to create a topic for another reason.
    """
    created = []
    for topic, code, *message in topic_errors:
        if code == 0:
            created.append(topic)
        elif code != TopicAlreadyExistsError.errno:
            detail = f" ({message[0]})" if message and message[0] else ""
            raise ConfigError(f"cannot create topic {topic}: "
                              f"{for_code(code).__name__}{detail}")
    return created


async def ensure_topics(settings: Settings) -> None:
    """Create the four topics, and the feedback topic with the events topic's partition
    count, if they do not exist yet (existing ones are left as they are).

    Raises:
        ConfigError: the events and feedback topics have different partition counts (they
            must be co-partitioned).
    """
    created = await create_topics(
        settings, {settings.topic(name): settings.topic_partitions
                   for name in constants.TOPIC_SUFFIXES}, replication=settings.topic_replication)
    events, feedback = settings.topic(constants.EVENTS), settings.topic(constants.FEEDBACK)
    counts = await partition_counts(settings, [events, feedback])
    if feedback not in counts and events in counts:
        created += await create_topics(settings, {feedback: counts[events]},
                                       replication=settings.topic_replication)
        counts[feedback] = counts[events]
    if created:
        log.info("created topics %s", ", ".join(created))
    if counts.get(events) != counts.get(feedback):
        raise ConfigError(f"topic {feedback} has {counts.get(feedback)} partitions and "
                          f"{events} has {counts.get(events)}: they must be co-partitioned "
                          "(same key, same partition count)")


async def ensure_changelogs(settings: Settings, partitions: dict[str, int]) -> None:
    """Create the Faust tables' changelog topics (name -> partition count; compacted, as
    Faust declares them) that do not exist yet, before Faust's consumer subscribes to them.

    Faust checks a table's changelog against its source topic by the partition counts in
    its consumer's subscription metadata; a changelog topic Faust creates after that
    snapshot is counted with 0 partitions until the next metadata refresh, and the first
    table write then crashes the agent (``PartitionsMismatch``: seen under load after a
    restart, the incidents agent dead while the worker scored on).
    """
    compact = {"cleanup.policy": "compact", "max.message.bytes": str(settings.max_fetch_bytes)}
    created = await create_topics(settings, partitions,
                                  configs={name: compact for name in partitions},
                                  replication=settings.topic_replication)
    if created:
        log.info("created changelog topics %s", ", ".join(created))


async def partition_counts(settings: Settings, topics: list[str]) -> dict[str, int]:
    """The partition count of each of ``topics`` that exists (the missing ones are not
    described: a metadata request may auto-create them with the broker's default count)."""
    admin = make_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [topic for topic in topics if topic in existing]
        described = await admin.describe_topics(wanted) if wanted else []
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if not t.get("error_code")}
