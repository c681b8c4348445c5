"""streams.undecodable over exceptions raised by aiokafka's own record unpacking.

The record batches are real Kafka v2 batches built with aiokafka's builder, then
damaged the ways a log can be (a flipped byte, codec bits no codec has, a codec bit
on data that is not compressed); aiokafka's ``FetchResult.getall`` unpacks them as it
does inside ``getmany``. (The same on a real broker: tests/integration/test_codecs.py.)
"""

import asyncio
import struct

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import READ_COMMITTED, FetchResult, PartitionRecords
from aiokafka.consumer.subscription_state import Assignment
from aiokafka.errors import CorruptRecordException, UnsupportedCodecError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.constants import DEADLETTER_REASONS
from schemas.outputs import DeadLetter
from streams import undecodable

TP = TopicPartition("events", 3)
_ATTRIBUTES = 21  # offset of the int16 attributes in a v2 record batch; the CRC covers 21..end


def batch(base: int, n: int) -> bytearray:
    """A v2 record batch of ``n`` records at offsets base..base+n-1."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    for i in range(n):
        builder.append(i, timestamp=1_700_000_000_000, key=b"k%d" % (base + i),
                       value=b'{"n": %d}' % (base + i), headers=[])
    data = builder.build()
    struct.pack_into(">q", data, 0, base)
    return data


def with_codec_bits(data: bytearray, codec: int) -> bytearray:
    """``data`` with its codec bits set to ``codec`` and a CRC that matches again."""
    (attributes,) = struct.unpack_from(">h", data, _ATTRIBUTES)
    struct.pack_into(">h", data, _ATTRIBUTES, (attributes & ~0x07) | codec)
    struct.pack_into(">I", data, 17, calc_crc32c(bytes(data[_ATTRIBUTES:])))
    return data


def flipped(data: bytearray) -> bytearray:
    data[-3] ^= 0xFF
    return data


def unpack(log: bytes, fetch_offset: int, max_records: int | None = None) -> list:
    """What aiokafka's fetcher hands out for ``log`` fetched at ``fetch_offset``."""
    async def run() -> list:
        return _unpack(log, fetch_offset, max_records)
    return asyncio.run(run())


def _unpack(log: bytes, fetch_offset: int, max_records: int | None) -> list:
    assignment = Assignment([TP])
    assignment.state_value(TP).reset_to(fetch_offset)
    records = PartitionRecords(TP, MemoryRecords(log), None, fetch_offset, None, None, True,
                               READ_COMMITTED)
    return FetchResult(TP, assignment=assignment, partition_records=records,
                       backoff=0).getall(max_records)


def caught(log: bytes, fetch_offset: int) -> BaseException:
    with pytest.raises(Exception) as info:
        unpack(log, fetch_offset)
    return info.value


@pytest.mark.parametrize(("damage", "error", "says"), [
    (flipped, CorruptRecordException, "Invalid CRC"),
    (lambda d: with_codec_bits(d, 6), UnsupportedCodecError, "Unknown compression codec 0x06"),
    (lambda d: with_codec_bits(d, 4), Exception, ""),  # zstd bits on plain data
    (lambda d: with_codec_bits(d, 1), Exception, ""),  # gzip bits on plain data
])
def test_a_damaged_batch_is_named_with_its_offsets_and_the_good_records_are_kept(
        damage, error, says):
    log = bytes(batch(100, 4) + damage(batch(104, 5)) + batch(109, 2))
    exc = caught(log, 101)
    assert isinstance(exc, error)
    bad = undecodable.diagnose(exc)
    assert bad is not None
    assert (bad.tp, bad.first_offset, bad.last_offset, bad.seek_to) == (TP, 104, 108, 109)
    assert says in bad.reason
    assert bad.reason.startswith(type(exc).__name__)
    # Records 101..103 were unpacked before the failure: they come back, none twice.
    assert [(r.offset, r.value) for r in bad.salvaged[TP]] == [
        (o, b'{"n": %d}' % o) for o in (101, 102, 103)]
    letter = DeadLetter.model_validate_json(bad.dead_letter(1024, "now"))
    assert (letter.topic, letter.partition, letter.offset) == ("events", 3, 104)
    assert letter.error.type == undecodable.REASON
    assert letter.error.details == [{"first_offset": 104, "last_offset": 108, "records": 5}]
    assert "104-108" in letter.error.message and "events[3]" in letter.error.message
    assert letter.payload is None


def test_a_damaged_first_batch_has_nothing_to_salvage():
    bad = undecodable.diagnose(caught(bytes(flipped(batch(50, 2)) + batch(52, 1)), 50))
    assert bad is not None
    assert (bad.first_offset, bad.last_offset, bad.salvaged) == (50, 51, {})


def test_an_unreadable_batch_header_skips_one_offset():
    good = batch(0, 2)
    broken = batch(2, 3)
    struct.pack_into(">i", broken, 8, 3)  # a batch length shorter than any header
    exc = caught(bytes(good + broken), 0)
    bad = undecodable.diagnose(exc)
    assert bad is not None
    assert (bad.first_offset, bad.last_offset, bad.seek_to) == (2, 2, 3)
    assert [r.offset for r in bad.salvaged[TP]] == [0, 1]


def test_other_failures_are_not_ours():
    assert undecodable.diagnose(RuntimeError("network")) is None
    try:
        raise CorruptRecordException("raised elsewhere")
    except CorruptRecordException as exc:
        assert undecodable.diagnose(exc) is None


def test_the_reason_is_a_declared_dead_letter_reason():
    assert undecodable.REASON in DEADLETTER_REASONS


@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=6), data=st.data())
@settings(max_examples=60, deadline=None)
def test_any_damaged_record_byte_names_exactly_its_batch(sizes, data):
    """Whichever batch is damaged, wherever in its records, and wherever the fetch starts
    before it: the range is that batch's (from the fetch position), and the records
    handed back are exactly those between the fetch position and the batch."""
    bases = [sum(sizes[:i]) for i in range(len(sizes))]
    bad = data.draw(st.integers(0, len(sizes) - 1))
    fetch = data.draw(st.integers(0, bases[bad] + sizes[bad] - 1))
    log = bytearray()
    for i, (base, n) in enumerate(zip(bases, sizes, strict=True)):
        if base + n <= fetch:
            continue  # a broker answers from the batch that holds the fetch offset
        one = batch(base, n)
        if i == bad:
            one[data.draw(st.integers(61, len(one) - 1))] ^= data.draw(st.integers(1, 255))
        log += one
    found = undecodable.diagnose(caught(bytes(log), fetch))
    assert found is not None
    assert found.first_offset == max(fetch, bases[bad])
    assert found.last_offset == bases[bad] + sizes[bad] - 1
    assert [r.offset for r in found.salvaged.get(TP, [])] == list(range(fetch, bases[bad]))
