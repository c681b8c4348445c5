"""The checkpoint codec (format 3): zstd inside the signature, bounded decompression, and
format-2 (uncompressed) checkpoints still loading."""

import resource
from dataclasses import asdict, replace
from pathlib import Path

import cramjam
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learners import checkpoint, safe_pickle
from learners.checkpoint import Where, seal, sign
from learners.exceptions import BadSignature, CheckpointError
from tests.learners.test_checkpoint_format import KEY, WHERE, trained

V2_BLOB = Path(__file__).parent / "data" / "checkpoint_v2.bin"
ZSTD = checkpoint._header(WHERE, 1, 0, 0.0, "zstd")
SMALL = checkpoint.dump(trained(n=20)[0], WHERE, 3, KEY, 0.0)


def forged(header: checkpoint.Header, stored: bytes, key: bytes = KEY) -> bytes:
    """A blob signed with ``key`` whose header says what it likes (what only a holder of
    the key could write): ``stored`` is put in as it is."""
    head = orjson.dumps(asdict(header))
    body = len(head).to_bytes(4, "big") + head + stored
    return sign(body, key) + body


def test_a_stored_format_2_checkpoint_loads_and_predicts_as_the_learner_that_wrote_it():
    # Written by format 2 (uncompressed payload, no codec in the header) before format 3
    # existed: the default model after the 200 events of ``trained()``, at offset 7.
    blob = V2_BLOB.read_bytes()
    header, restored = checkpoint.load(blob, WHERE, KEY)
    assert (header.format, header.codec, header.size, header.offset, header.n_learned) == (
        2, "none", -1, 7, 200)
    assert b"zstd" not in blob and b'"codec"' not in blob
    learner, probes = trained()
    for x, y in probes:
        a, b = learner.step(x, y), restored.step(x, y)
        assert repr((a.prediction, a.scores)) == repr((b.prediction, b.scores))


def test_dump_compresses_and_records_codec_and_size():
    learner, _ = trained()
    blob = checkpoint.dump(learner, WHERE, 3, KEY, 0.0)
    header, stored = checkpoint.verify(blob, KEY)
    pickled = safe_pickle.dumps(learner)
    assert (header.format, header.codec, header.size) == (3, "zstd", len(pickled))
    assert bytes(cramjam.zstd.decompress(bytes(stored))) == pickled
    assert len(stored) < len(pickled)
    assert checkpoint.read_header(blob, KEY)[1] == pickled


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=4096), codec=st.sampled_from(checkpoint.CODECS))
def test_compress_sign_verify_decompress_round_trips(payload, codec):
    blob = seal(replace(ZSTD, codec=codec), payload, KEY)
    header, out = checkpoint.read_header(blob, KEY)
    assert (out, header.codec, header.size) == (payload, codec, len(payload))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_flipped_byte_is_refused_by_the_signature_before_decompression(data):
    blob = SMALL
    at = data.draw(st.integers(0, len(blob) - 1), label="byte")
    mask = data.draw(st.integers(1, 255), label="xor")
    bad = bytearray(blob)
    bad[at] ^= mask
    reached = []
    with pytest.MonkeyPatch.context() as m:
        m.setattr(checkpoint, "decompress", lambda *a: reached.append("decompress"))
        m.setattr(safe_pickle, "loads", lambda *a, **k: reached.append("unpickle"))
        with pytest.raises(BadSignature, match=r"^checkpoint signature does not verify$"):
            checkpoint.load(bytes(bad), WHERE, KEY)
    assert reached == []


def test_a_payload_that_inflates_beyond_its_declared_size_is_refused_in_bounded_memory():
    frame = bytes(cramjam.zstd.compress(bytes(50_000_000), level=3))
    bomb = forged(replace(ZSTD, size=1_000), frame * 40)  # 2 GB of zeros once inflated
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=r"^checkpoint payload does not decompress to its "
                                              r"declared 1000 bytes$"):
        checkpoint.load(bomb, WHERE, KEY)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024  # far below the 2 GB the stream holds


@pytest.mark.parametrize("size", [checkpoint.MAX_PAYLOAD_BYTES + 1, checkpoint.MAX_PAYLOAD_BYTES,
                                  checkpoint.RATIO_FLOOR + 1, -5, "12"])
def test_a_declared_size_out_of_bounds_is_refused_before_allocating(size, monkeypatch):
    # 10 stored bytes may declare at most the 16 MiB floor: 2 GiB used to be allocated (and
    # zero-filled) before decompression found the payload was 1 byte.
    blob = forged(replace(ZSTD, size=size), bytes(cramjam.zstd.compress(b"x", level=3)))
    monkeypatch.setattr(cramjam.zstd, "decompress_into", pytest.fail)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=r"^checkpoint declares a payload of .* bytes from "
                                              r"10 stored; refusing to decompress more than "
                                              r"16777216$"):
        checkpoint.load(blob, WHERE, KEY)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB


def test_the_declared_size_is_bounded_by_the_stored_size_times_the_ratio():
    # 32 MiB of zeros is ~1 KB stored (a ratio far above any pickle's): refused, even though
    # it declares its true size; the same stream at the floor's size still loads.
    above = bytes(checkpoint.RATIO_FLOOR * 2)
    stored = bytes(cramjam.zstd.compress(above, level=3))
    assert len(stored) * checkpoint.MAX_RATIO < len(above)
    with pytest.raises(CheckpointError, match=rf"^checkpoint declares a payload of {len(above)} "
                                              rf"bytes from {len(stored)} stored; refusing"):
        checkpoint.read_header(forged(replace(ZSTD, size=len(above)), stored), KEY)
    at_floor = bytes(checkpoint.RATIO_FLOOR)
    blob = seal(ZSTD, at_floor, KEY)
    assert checkpoint.read_header(blob, KEY)[1] == at_floor


@settings(max_examples=100, deadline=None)
@given(stored=st.integers(0, 10**10))
def test_max_payload_is_the_ratio_between_the_floor_and_the_cap(stored):
    limit = checkpoint.max_payload(stored)
    assert checkpoint.RATIO_FLOOR <= limit <= checkpoint.MAX_PAYLOAD_BYTES
    assert limit == max(checkpoint.RATIO_FLOOR, stored * checkpoint.MAX_RATIO) or (
        limit == checkpoint.MAX_PAYLOAD_BYTES)


@pytest.mark.parametrize("stored, why", [
    (b"not zstd at all", "does not decompress to its declared 5 bytes"),
    (bytes(cramjam.zstd.compress(b"abc", level=3)), "does not decompress to its declared 5 bytes"),
])
def test_a_payload_shorter_or_not_zstd_is_refused(stored, why):
    with pytest.raises(CheckpointError, match=why):
        checkpoint.load(forged(replace(ZSTD, size=5), stored), WHERE, KEY)


def test_an_unknown_codec_is_refused_in_one_line():
    blob = forged(replace(ZSTD, codec="brotli", size=1), b"x")
    with pytest.raises(CheckpointError, match=r"^checkpoint payload uses codec 'brotli'; this "
                                              r"Driftline reads none, zstd$"):
        checkpoint.load(blob, WHERE, KEY)
    with pytest.raises(CheckpointError, match="unknown checkpoint codec 'brotli'"):
        seal(replace(ZSTD, codec="brotli"), b"x", KEY)


def test_where_is_still_checked_on_a_compressed_checkpoint():
    learner, _ = trained(n=5)
    blob = checkpoint.dump(learner, WHERE, 3, KEY, 0.0)
    with pytest.raises(CheckpointError, match="belongs to"):
        checkpoint.load(blob, Where("g", "t.events", 1, "m"), KEY)
