"""Record batches the consumer cannot decode: dead-letter them and step past them.

A record batch whose CRC does not match, whose codec is unknown or whose
compressed data does not decompress makes aiokafka's ``getmany`` raise while it
unpacks that batch (``CorruptRecordException``, ``UnsupportedCodecError``, or
whatever the codec library raises, e.g. ``cramjam.DecompressionError`` or
``zlib.error``). aiokafka neither skips the batch nor keeps its place: the next
fetch reads the same batch and raises again, so the partition is blocked for
good. The exception itself names neither the partition nor the offsets.

:func:`diagnose` reads both from the frames the exception passed through
(aiokafka 0.11-0.14, ``aiokafka/consumer/fetcher.py``):

* ``PartitionRecords._unpack_records`` holds the partition (``self._tp``), the
  next offset not yet handed out (``self.next_fetch_offset``) and the batch being
  unpacked (``next_batch``, with ``base_offset`` and ``next_offset``);
* ``FetchResult.getall`` holds the records of that partition already unpacked in
  this call (``ret_list``); the partition's position was not moved past them;
* ``Fetcher.fetched_records`` holds the records of other partitions already
  drained in this call (``drained``); their positions *were* moved past them.

Both lists are returned as :attr:`Undecodable.salvaged`, so the caller handles
them like a normal batch and nothing is lost; then it publishes
:attr:`Undecodable.dead_letter` and seeks the partition to
:attr:`Undecodable.seek_to`. A failure whose frames are not aiokafka's record
unpacking (a network error, a stopped consumer) gives ``None``: not ours to
handle.

If the batch header itself cannot be read (its length is garbage) the end of
the batch is unknown: the dead letter covers the one offset at the position and
the consumer steps one offset on, so it always progresses.
"""

import logging
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiokafka import TopicPartition

from streams.deadletter import dead_letter
from streams.records import Record

log = logging.getLogger(__name__)

#: ``error.type`` of the dead letter for an undecodable record batch.
REASON = "undecodable_batch"


@dataclass(frozen=True)
class Undecodable:
    """One record batch that cannot be decoded, and what to do about it.

    Offsets are Kafka offsets of ``tp``; ``first_offset``..``last_offset`` is
    inclusive; ``seek_to`` = ``last_offset`` + 1.
    """

    tp: TopicPartition
    first_offset: int
    last_offset: int
    reason: str
    #: Records unpacked before the failure, per partition, in offset order.
    salvaged: dict[TopicPartition, list[Any]] = field(default_factory=dict)

    @property
    def seek_to(self) -> int:
        """The first offset after the undecodable batch."""
        return self.last_offset + 1

    @property
    def message(self) -> str:
        """One line for the dead letter and the log."""
        return (f"record batch at offsets {self.first_offset}-{self.last_offset} of "
                f"{self.tp.topic}[{self.tp.partition}] cannot be decoded: {self.reason}")

    def dead_letter(self, max_bytes: int, at: str) -> bytes:
        """The dead letter (JSON) naming the topic, partition, offset range and reason.

        >>> import orjson
        >>> bad = Undecodable(TopicPartition("t", 2), 10, 14, "CorruptRecordException: x")
        >>> d = orjson.loads(bad.dead_letter(1024, "now"))
        >>> d["topic"], d["partition"], d["offset"], d["payload"], d["error"]["type"]
        ('t', 2, 10, None, 'undecodable_batch')
        >>> d["error"]["details"]
        [{'first_offset': 10, 'last_offset': 14, 'records': 5}]
        """
        record = Record(self.tp.topic, self.tp.partition, self.first_offset, None, None, None)
        details = [{"first_offset": self.first_offset, "last_offset": self.last_offset,
                    "records": self.last_offset - self.first_offset + 1}]
        return dead_letter(record, REASON, self.message, details, max_bytes, at)


def _frames(tb: TracebackType | None) -> list[tuple[str, dict[str, Any]]]:
    out = []
    while tb is not None:
        out.append((tb.tb_frame.f_code.co_name, tb.tb_frame.f_locals))
        tb = tb.tb_next
    return out


def diagnose(exc: BaseException) -> Undecodable | None:
    """The undecodable batch ``exc`` was raised for, or None if it is not such a failure.

    ``exc`` must be the exception ``AIOKafkaConsumer.getmany`` raised, with its
    traceback. See the module docstring for what is read from where.
    """
    frames = _frames(exc.__traceback__)
    unpack = next((f for name, f in reversed(frames) if name == "_unpack_records"
                   and hasattr(f.get("self"), "next_fetch_offset")), None)
    if unpack is None:
        return None
    records = unpack["self"]
    tp: TopicPartition = unpack["tp"]
    position: int = records.next_fetch_offset
    batch = unpack.get("next_batch")
    last = position
    if batch is not None and batch.next_offset > position:
        # Failed inside ``batch`` (its header was read): skip the rest of it.
        last = batch.next_offset - 1
    # else the next batch's header is unreadable: skip one offset and try again.
    salvaged: dict[TopicPartition, list[Any]] = {}
    for name, f in frames:
        if name == "fetched_records" and isinstance(f.get("drained"), dict):
            salvaged.update(f["drained"])
    for name, f in frames:
        if name == "getall" and isinstance(f.get("ret_list"), list) and f["ret_list"]:
            salvaged.setdefault(tp, []).extend(f["ret_list"])
    reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    return Undecodable(tp, position, last, reason, salvaged)
