"""Driftline's Kafka consumer and topic set-up, configured from :class:`Settings`.

The hot path consumes with aiokafka directly (see docs/architecture.md, "Why
not a Faust agent on the hot path"); the producer is Faust's.
"""

import contextlib
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas import constants
from schemas.settings import Settings
from streams.kafka_security import kafka_security_kwargs

log = logging.getLogger(__name__)


def make_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A group consumer that never commits by itself: Driftline commits explicitly."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.app_id,
        client_id=f"{settings.app_id}-scoring",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=settings.max_fetch_bytes,
        fetch_max_bytes=max(settings.max_fetch_bytes, 50 * 1024 * 1024),
        max_poll_records=settings.batch_max,
        fetch_max_wait_ms=int(settings.batch_within * 1000) or 1,
        isolation_level="read_committed",
        group_instance_id=settings.instance_id,
        session_timeout_ms=int(settings.session_timeout * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
        **kafka_security_kwargs(settings),
    )


def subscribe(consumer: AIOKafkaConsumer, settings: Settings,
              listener: ConsumerRebalanceListener) -> None:
    """Subscribe to the events topic with ``listener`` told of every rebalance."""
    consumer.subscribe([settings.topic(constants.EVENTS)], listener=listener)


async def ensure_topics(settings: Settings) -> None:
    """Create the four topics if they do not exist yet (existing ones are left as they are)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                client_id=f"{settings.app_id}-admin",
                                **kafka_security_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(settings.topic(name), settings.topic_partitions,
                           settings.topic_replication,
                           topic_configs={"max.message.bytes": str(settings.max_fetch_bytes)})
                  for name in constants.TOPIC_SUFFIXES if settings.topic(name) not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was faster
                await admin.create_topics(wanted)
            log.info("created topics %s", ", ".join(t.name for t in wanted))
    finally:
        await admin.close()
