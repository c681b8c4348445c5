"""Issue 11 §1 on the real broker: every codec Kafka has is read, and a record batch the
consumer cannot decode becomes one dead letter while its partition goes on.

Predictions are checked against River in-process over the same events in offset order,
which is what an uncompressed run gives (tests/integration/test_pipeline.py), to the
last bit. Which codec each stored batch really has is read from the broker's own log
segment when the broker runs on this machine (it does unless an external or Docker
broker is configured).
"""

import asyncio
import struct
import subprocess
import urllib.request
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c
from river import linear_model, preprocessing

from learners.learner import class_key
from schemas.outputs import DeadLetter, Prediction
from streams.localservices.kafka import ensure_jars, require_java
from streams.sources import synthetic_events
from tests.kafka_tools import consume, create_topic, produce

CODECS = ("gzip", "snappy", "lz4", "zstd")
_CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def events(n: int, seed: int) -> list[dict]:
    return list(synthetic_events("sea", n=n, drift_at=None, seed=seed, model="default"))


def produce_with(bootstrap: str, topic: str, batch: list[dict], codec: str | None) -> None:
    """Send ``batch`` to partition 0 with aiokafka's producer compressing with ``codec``."""
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    compression_type=codec, linger_ms=50)
        await producer.start()
        try:
            futures = [await producer.send(topic, orjson.dumps(e), key=e["event_id"].encode(),
                                           partition=0) for e in batch]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
    asyncio.run(run())


def produce_with_java(bootstrap: str, topic: str, batch: list[dict], codec: str) -> None:
    """Send ``batch`` with Kafka's own Java console producer compressing with ``codec``."""
    lines = b"".join(e["event_id"].encode() + b"\t" + orjson.dumps(e) + b"\n" for e in batch)
    result = subprocess.run(
        [require_java(), "-cp", f"{ensure_jars()}/*", "kafka.tools.ConsoleProducer",
         "--bootstrap-server", bootstrap, "--topic", topic, "--compression-codec", codec,
         "--request-required-acks", "all", "--property", "parse.key=true",
         "--property", "key.separator=\t", "--property", "partitioner.class="
         "org.apache.kafka.clients.producer.RoundRobinPartitioner"],
        input=lines, capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]


def segment_file(bootstrap: str, topic: str, partition: int) -> Path | None:
    """The broker's first log segment of ``topic``-``partition``, if it is on this machine."""
    async def log_dirs() -> str:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            node = str(cluster["controller_id"])
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.BROKER, node)])
            return next(str(entry[1]) for entry in response.resources[0][4]
                        if entry[0] == "log.dirs")
        finally:
            await admin.close()
    for log_dir in asyncio.run(log_dirs()).split(","):
        path = Path(log_dir) / f"{topic}-{partition}" / ("0" * 20 + ".log")
        if path.exists():
            return path
    return None


def stored_batches(path: Path) -> list[tuple[int, int, str, int]]:
    """(first offset, last offset, codec, byte position) of each batch in a segment."""
    data = path.read_bytes()
    out, pos = [], 0
    records = MemoryRecords(data)
    while records.has_next():
        batch = records.next_batch()
        out.append((batch.base_offset, batch.next_offset - 1,
                    _CODEC_NAMES[batch.compression_type], pos))
        pos += 12 + struct.unpack_from(">i", data, pos + 8)[0]
    return out


def assert_bit_identical(predictions: list, sent: dict[int, dict]) -> None:
    """Predictions equal River in-process over ``sent`` (offset -> event), in offset order."""
    got = {}
    for record in predictions:
        p = Prediction.model_validate_json(record.value)
        got[p.offset] = p
    assert sorted(got) == sorted(sent)
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for learned, offset in enumerate(sorted(sent)):
        event = sent[offset]
        x, y = event["features"], event["label"]
        proba = model.predict_proba_one(x)
        expected = model.predict_one(x)
        model.learn_one(x, y)
        p = got[offset]
        assert p.event_id == event["event_id"]
        assert p.scores == {class_key(c): v for c, v in proba.items()}
        assert p.prediction == expected
        assert p.model_version == learned


def test_batches_of_every_codec_from_python_and_java_producers(kafka, topic_prefix,
                                                                start_worker):
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=1)
    stream = iter(events(360, seed=11))
    sent_in_order: list[tuple[str, list[dict]]] = []
    for codec in (None, *CODECS):
        chunk = [next(stream) for _ in range(40)]
        produce_with(kafka.bootstrap, topic, chunk, codec)
        sent_in_order.append((codec or "none", chunk))
        if codec is not None:
            chunk = [next(stream) for _ in range(40)]
            produce_with_java(kafka.bootstrap, topic, chunk, codec)
            sent_in_order.append((codec, chunk))
    sent = dict(enumerate(e for _, chunk in sent_in_order for e in chunk))
    segment = segment_file(kafka.bootstrap, topic, 0)
    if segment is not None:  # each chunk is stored with the codec its producer used
        codec_at = {o: codec for first, last, codec, _ in stored_batches(segment)
                    for o in range(first, last + 1)}
        expected = [codec for codec, chunk in sent_in_order for _ in chunk]
        assert [codec_at[o] for o in range(len(sent))] == expected

    worker = start_worker()
    predictions = consume(kafka.bootstrap, f"{topic_prefix}predictions", len(sent),
                          timeout=120)
    assert worker.alive(), worker.log()[-2000:]
    assert_bit_identical(predictions, sent)


@pytest.mark.parametrize("codec", CODECS)
def test_a_topic_level_compression_type(kafka, topic_prefix, start_worker, codec):
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=1,
                 configs={"compression.type": codec, "max.message.bytes": str(4 << 20)})
    batch = events(60, seed=12)
    produce(kafka.bootstrap, topic, [(e["event_id"].encode(), orjson.dumps(e)) for e in batch],
            partition=0)
    segment = segment_file(kafka.bootstrap, topic, 0)
    if segment is not None:  # the broker compressed what arrived uncompressed
        assert {codec for _, _, codec, _ in stored_batches(segment)} == {codec}
    worker = start_worker()
    predictions = consume(kafka.bootstrap, f"{topic_prefix}predictions", len(batch),
                          timeout=90)
    assert worker.alive(), worker.log()[-2000:]
    assert_bit_identical(predictions, dict(enumerate(batch)))


def _flip_a_byte(data: bytearray, pos: int, size: int) -> None:
    data[pos + size - 2] ^= 0xFF  # inside the last record: the CRC no longer matches


def _set_codec_bits(codec: int):
    def damage(data: bytearray, pos: int, size: int) -> None:
        attributes = pos + 21
        (value,) = struct.unpack_from(">h", data, attributes)
        struct.pack_into(">h", data, attributes, (value & ~0x07) | codec)
        struct.pack_into(">I", data, pos + 17, calc_crc32c(bytes(data[attributes:pos + size])))
    return damage


def test_an_undecodable_batch_is_one_dead_letter_and_the_partition_goes_on(
        kafka, topic_prefix, start_worker):
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=2)
    chunks = [events(10, seed=20 + i) for i in range(7)]
    for chunk in chunks:  # one producer per chunk: one record batch per chunk
        produce(kafka.bootstrap, topic,
                [(e["event_id"].encode(), orjson.dumps(e)) for e in chunk], partition=0)
    other = events(25, seed=30)
    produce(kafka.bootstrap, topic, [(e["event_id"].encode(), orjson.dumps(e)) for e in other],
            partition=1)
    segment = segment_file(kafka.bootstrap, topic, 0)
    if segment is None:
        pytest.skip("the broker's log is not on this machine: cannot damage a stored batch")
    batches = stored_batches(segment)
    assert [(first, last) for first, last, _, _ in batches] == [
        (10 * i, 10 * i + 9) for i in range(7)]
    damages = {1: (_flip_a_byte, "CorruptRecordException"),
               3: (_set_codec_bits(6), "UnsupportedCodecError"),
               4: (_set_codec_bits(4), "")}  # zstd bits on data that is not zstd
    data = bytearray(segment.read_bytes())
    for index, (damage, _) in damages.items():
        _, _, _, pos = batches[index]
        size = (batches[index + 1][3] if index + 1 < len(batches) else len(data)) - pos
        damage(data, pos, size)
    with segment.open("r+b") as f:  # same length, in place: the broker serves it as is
        f.write(data)

    worker = start_worker()
    good = {10 * i + j: e for i, chunk in enumerate(chunks) if i not in damages
            for j, e in enumerate(chunk)}
    predictions = consume(kafka.bootstrap, f"{topic_prefix}predictions",
                          len(good) + len(other), timeout=120)
    dead = consume(kafka.bootstrap, f"{topic_prefix}deadletter", len(damages), timeout=60)
    assert worker.alive(), worker.log()[-2000:]

    letters = sorted((DeadLetter.model_validate_json(r.value) for r in dead),
                     key=lambda d: d.offset)
    assert [(d.topic, d.partition, d.offset, d.error.type) for d in letters] == [
        (topic, 0, 10 * i, "undecodable_batch") for i in sorted(damages)]
    for letter, index in zip(letters, sorted(damages), strict=True):
        first, last = 10 * index, 10 * index + 9
        assert letter.error.details == [{"first_offset": first, "last_offset": last,
                                         "records": 10}]
        assert f"offsets {first}-{last} of {topic}[0]" in letter.error.message
        assert damages[index][1] in letter.error.message
    # Partition 0 went on past each bad batch; partition 1 lost nothing.
    on_0 = [r for r in predictions if Prediction.model_validate_json(r.value).partition == 0]
    on_1 = [r for r in predictions if Prediction.model_validate_json(r.value).partition == 1]
    assert_bit_identical(on_0, good)
    assert_bit_identical(on_1, dict(enumerate(other)))
    # Counted under their own reason, and the worker still serves /models.
    port = worker.env["DRIFTLINE_WEB_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        scrape = answer.read().decode()
    assert 'driftline_deadletters_total{reason="undecodable_batch"} 3.0' in scrape
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=5) as answer:
        assert orjson.loads(answer.read())["default"]["0"]["learned"] == len(good)
