"""The baselines Driftline is measured against, on the same events and model.

(a) River in-process, no Kafka: the compute ceiling.
(b) A plain aiokafka loop doing the same work: what a user would write by hand.
(c) A naive faust-streaming agent: ``async for`` plus ``topic.send`` per event
    (run as a subprocess: ``python -m bench.naive_faust``).
(d) The same loop as (b) on confluent-kafka (librdkafka fetches and batches in C
    threads), when it is installed: to decide whether switching the client would pay.
"""

import asyncio
import time

import orjson
from river import linear_model, preprocessing

from learners.pipeline_text import build_pipeline
from schemas.settings import Settings
from streams.kafka_clients import make_producer, make_reader


def make_model(pipeline: str | None = None):
    """The default model, ``StandardScaler() | LogisticRegression()``, or ``pipeline``
    (models-file syntax)."""
    if pipeline is not None:
        return build_pipeline(pipeline)
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


class Work:
    """Per event: parse, predict, learn, serialise a prediction."""

    def __init__(self, pipeline: str | None = None) -> None:
        self.model = make_model(pipeline)
        self.learned = 0

    def handle(self, raw: bytes) -> bytes:
        """The prediction for one raw event."""
        event = orjson.loads(raw)
        x, y = event["features"], event.get("label")
        proba = self.model.predict_proba_one(x)
        prediction = max(proba, key=proba.get) if proba else None
        version = self.learned
        if y is not None:
            self.model.learn_one(x, y)
            self.learned += 1
        return orjson.dumps({"event_id": event["event_id"], "model": event["model"],
                             "prediction": prediction,
                             "scores": {str(k).lower(): v for k, v in proba.items()},
                             "model_version": version, "learned": y is not None})


def in_process(values: list[bytes], pipeline: str | None = None) -> float:
    """(a): events per second of the work alone."""
    work = Work(pipeline)
    started = time.perf_counter()
    for value in values:
        work.handle(value)
    return len(values) / (time.perf_counter() - started)


async def aiokafka_loop(bootstrap: str, source: str, sink: str, group: str, n: int) -> None:
    """(b): consume ``n`` events from ``source``, publish a prediction each to ``sink``."""
    settings = Settings(kafka_bootstrap=bootstrap)
    consumer = make_reader(settings, source, group_id=group, auto_offset_reset="earliest")
    producer = make_producer(settings, linger_ms=2, enable_idempotence=False,
                             max_batch_size=16384, max_request_size=1048576)
    await consumer.start()
    await producer.start()
    work = Work()
    done = 0
    try:
        while done < n:
            batch = await consumer.getmany(timeout_ms=100, max_records=1000)
            futures = []
            for records in batch.values():
                for record in records:
                    futures.append(await producer.send(sink, work.handle(record.value),
                                                       key=record.key))
            await asyncio.gather(*futures)
            if futures:
                await consumer.commit()
            done += len(futures)
    finally:
        await producer.stop()
        await consumer.stop()


def confluent_loop(bootstrap: str, source: str, sink: str, group: str, n: int) -> None:
    """(d): (b) on confluent-kafka: consume up to 1,000 events, publish a prediction each,
    wait until all are acknowledged, commit; until ``n`` are done."""
    from confluent_kafka import Consumer, KafkaException, Producer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "acks": "all",
                         "enable.idempotence": False})
    consumer.subscribe([source])
    work = Work()
    done = 0
    failed: list[object] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(err)
    try:
        while done < n:
            messages = consumer.consume(num_messages=1000, timeout=0.1)
            for message in messages:
                if message.error():
                    raise KafkaException(message.error())
                producer.produce(sink, work.handle(message.value()), key=message.key(),
                                 on_delivery=delivered)
            producer.flush()
            if failed:
                raise KafkaException(failed[0])
            if messages:
                consumer.commit(asynchronous=False)
            done += len(messages)
    finally:
        consumer.close()
