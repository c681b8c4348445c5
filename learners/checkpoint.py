"""The checkpoint format: a learner's whole state, signed with HMAC-SHA256.

Layout: ``signature (32 bytes) | header length (4 bytes, big-endian) | header JSON |
payload``, the payload being the pickled learner compressed with the header's ``codec``
(``zstd`` since format 3; ``none`` before). The signature covers everything after it,
the payload as stored: nothing is decompressed, unpickled (nor the header trusted)
before it verifies, and decompression writes into a buffer of the header's declared
``size``, itself bounded by the stored payload's size (:func:`max_payload`: at most
:data:`MAX_RATIO` times it above a small floor, never above :data:`MAX_PAYLOAD_BYTES`), so
no blob inflates beyond it, nor makes the reader allocate more than its own bytes allow. The
header names the model, partition, source topic and consumer group, so a blob copied to
another key is refused too, and the versions of the format, River, Python and Driftline that wrote
it. The pickle is read with :mod:`learners.safe_pickle`'s exact allow-list.

Refusals are :class:`~learners.exceptions.CheckpointError` subclasses with one-line
messages: :class:`BadSignature`, :class:`UnsupportedObject`, :class:`VersionMismatch`.

>>> from learners.learner import Learner
>>> from schemas.models_file import ModelSpec
>>> learner = Learner.from_spec(ModelSpec(task="regression",
...     pipeline="linear_model.LinearRegression()"), cooldown=10)
>>> _ = learner.step({"x": 1.0}, 2.0)
>>> where = Where(group="g", topic="t.events", partition=3, model="m")
>>> blob = dump(learner, where, offset=41, key=b"secret", now=1700000000.0)
>>> header, restored = load(blob, where, key=b"secret")
>>> header.offset, header.n_learned, restored.n_learned, restored.model.predict_one({"x": 1.0})
(41, 1, 1, 0.08)
>>> header.format, header.codec, header.river == RIVER_VERSION
(3, 'zstd', True)
>>> load(blob, where, key=b"other")
Traceback (most recent call last):
...
learners.exceptions.BadSignature: checkpoint signature does not verify
"""

import hashlib
import hmac
import importlib.metadata
import platform
import struct
import sys
from dataclasses import asdict, dataclass, replace
from typing import Any

import cramjam
import orjson
import river

from learners import safe_pickle
from learners.exceptions import BadSignature, CheckpointError, UnsupportedObject, VersionMismatch
from learners.learner import Learner
from learners.pipeline_text import build_pipeline
from schemas.event import parsed_names
from schemas.exceptions import ConfigError
from schemas.models_file import ModelSpec

FORMAT_VERSION = 3
#: 1: no versions in the header, payload written by plain pickle; 2: no codec (uncompressed)
READABLE_FORMATS = (1, 2, 3)
#: The codec :func:`dump` writes, and those :func:`read_header` reads.
CODEC = "zstd"
CODECS = ("none", "zstd")
#: zstd level: 3 (zstd's own default) gives ~5x on River's weight dicts at a quarter of the
#: time of level 11 (cramjam's default); see docs/benchmarks.md, "checkpoint codec".
ZSTD_LEVEL = 3
#: The largest payload a checkpoint may declare (decompressed), 2 GiB: ~20x the pickle of
#: 1.5 M features; a blob declaring more is refused before anything is decompressed.
MAX_PAYLOAD_BYTES = 2 * 1024**3
#: The most a stored (compressed) byte may declare once decompressed: River's pickles
#: compress 1.2x (a Hoeffding tree) to ~90x (200,000 weights all zero), zstd itself reaches
#: ~32,000x on zeros; a blob declaring more than this ratio is refused before any buffer
#: is allocated, so a 2 KB blob cannot make a reader allocate 2 GiB.
MAX_RATIO = 1024
#: Below this many bytes declared, the ratio is not checked (small payloads of one value
#: repeated compress better than any ratio; 16 MiB is harmless to allocate).
RATIO_FLOOR = 16 * 1024**2
MIN_KEY_BYTES = 32
RIVER_VERSION: str = river.__version__
PYTHON_VERSION = platform.python_version()
try:
    DRIFTLINE_VERSION = importlib.metadata.version("driftline")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    DRIFTLINE_VERSION = "unknown"
_SIG = hashlib.sha256().digest_size
_LEN = struct.Struct(">I")
#: CPython before 3.13 de-optimises every object whose ``__dict__`` a pickler read: a
#: restored learner, pickled once to check it can be checkpointed again, is read back
#: from that pickle (objects filled attribute by attribute keep the fast path).
_REINLINE = sys.version_info < (3, 13)
_WHAT_TO_DO = ("set DRIFTLINE_CHECKPOINT_UNVERIFIABLE=fresh to start the model afresh, or "
               "replay the events topic into a fresh model")


@dataclass(frozen=True, slots=True)
class Where:
    """Whose checkpoint: consumer group, events topic, partition, model."""

    group: str
    topic: str
    partition: int
    model: str


@dataclass(frozen=True, slots=True)
class Header:
    """What a checkpoint says about itself (trusted only after the signature verifies).

    ``river``, ``python`` and ``driftline`` are the versions that wrote it (``unknown`` in
    a format-1 checkpoint, which did not record them). ``codec`` compressed the payload
    (``none`` before format 3) and ``size`` is its length in bytes once decompressed
    (``-1``: not recorded, an uncompressed payload).
    """

    format: int
    group: str
    topic: str
    partition: int
    model: str
    offset: int
    n_learned: int
    created_at: float
    river: str = "unknown"
    python: str = "unknown"
    driftline: str = "unknown"
    codec: str = "none"
    size: int = -1
    #: Late labels (``learners/feedback_codec.py``): the model's pending-hash summary and
    #: the feedback topic's offset the checkpoint reflects; None without feedback state.
    feedback: dict[str, Any] | None = None

    def where(self) -> Where:
        """The (group, topic, partition, model) this checkpoint belongs to."""
        return Where(self.group, self.topic, self.partition, self.model)

    def versions(self) -> str:
        """``format 2, River 0.26.1, Python 3.11.7, Driftline 0.1.0``."""
        return (f"format {self.format}, River {self.river}, Python {self.python}, "
                f"Driftline {self.driftline}")


def signing_key(secret: str | None, name: str = "DRIFTLINE_CHECKPOINT_KEY") -> bytes:
    """The checkpoint key as bytes; refused (one line naming the variable ``name``, never the
    key) when unset or shorter than 32 bytes.

    >>> len(signing_key("x" * 32))
    32
    >>> signing_key("short")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    schemas.exceptions.ConfigError: DRIFTLINE_CHECKPOINT_KEY is 5 bytes: it must be at least 32 ...
    """
    if not secret:
        raise ConfigError(f"{name} is not set: checkpoints are signed with it (or set "
                          "DRIFTLINE_CHECKPOINTS=false to run without them)")
    key = secret.encode()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{name} is {len(key)} bytes: it must be at least {MIN_KEY_BYTES} "
                          "(e.g. `openssl rand -hex 32`)")
    return key


def sign(body: bytes, key: bytes) -> bytes:
    """The HMAC-SHA256 of ``body``."""
    return hmac.new(key, body, hashlib.sha256).digest()


def _header(where: Where, offset: int, n_learned: int, now: float,
            codec: str = "none", feedback: dict[str, Any] | None = None) -> Header:
    return Header(FORMAT_VERSION, where.group, where.topic, where.partition, where.model,
                  offset, n_learned, now, RIVER_VERSION, PYTHON_VERSION, DRIFTLINE_VERSION,
                  codec, feedback=feedback)


def dump(learner: Learner, where: Where, offset: int, key: bytes, now: float,
         feedback: dict[str, Any] | None = None) -> bytes:
    """Serialise ``learner``, which reflects every event up to ``offset``, compress the
    pickle with :data:`CODEC` and sign it.

    Raises:
        UnsupportedObject: the model holds an object that cannot be checkpointed safely
            (:func:`check_checkpointable` refuses such models at start-up).
    """
    header = _header(where, offset, learner.n_learned, now, CODEC, feedback)
    return seal(header, safe_pickle.dumps(learner), key)


def seal(header: Header, payload: bytes, key: bytes) -> bytes:
    """Compress a pickled payload with ``header.codec`` and sign it with the header (its
    ``size`` set to the payload's length) into one blob; the signature covers the
    compressed bytes, as stored."""
    if header.codec not in CODECS:
        raise CheckpointError(f"unknown checkpoint codec {header.codec!r}")
    header = replace(header, size=len(payload))
    stored = payload if header.codec == "none" else bytes(
        cramjam.zstd.compress(payload, level=ZSTD_LEVEL))
    head = orjson.dumps(asdict(header))
    body = b"".join((_LEN.pack(len(head)), head, stored))
    return sign(body, key) + body


def decompress(header: Header, stored: bytes | memoryview) -> bytes:
    """The pickled payload of a verified checkpoint: ``stored`` decompressed into exactly
    ``header.size`` bytes (never more: a buffer of that size is the only output).

    >>> h = replace(_header(Where("g", "t", 0, "m"), 0, 0, 0.0, "zstd"), size=5)
    >>> decompress(h, cramjam.zstd.compress(b"hello", level=3))
    b'hello'
    >>> decompress(h, cramjam.zstd.compress(b"hello, world", level=3))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    learners.exceptions.CheckpointError: checkpoint payload does not decompress to its ...

    Raises:
        CheckpointError: an unknown codec, a declared size above :func:`max_payload` of
            the stored size, or a payload that is not exactly ``size`` bytes once
            decompressed.
    """
    if header.codec == "none":
        return bytes(stored)
    if header.codec not in CODECS:
        raise CheckpointError(f"checkpoint payload uses codec {header.codec!r}; this "
                              f"Driftline reads {', '.join(CODECS)}")
    limit = max_payload(len(stored))
    if not isinstance(header.size, int) or not 0 <= header.size <= limit:
        raise CheckpointError(f"checkpoint declares a payload of {header.size} bytes from "
                              f"{len(stored)} stored; refusing to decompress more than {limit}")
    out = bytearray(header.size)
    try:
        written = cramjam.zstd.decompress_into(stored, out)
    except cramjam.DecompressionError:
        written = -1
    if written != header.size:
        raise CheckpointError("checkpoint payload does not decompress to its declared "
                              f"{header.size} bytes")
    return bytes(out)


def max_payload(stored: int) -> int:
    """The largest decompressed size (bytes) a payload of ``stored`` compressed bytes may
    declare: :data:`MAX_RATIO` times ``stored``, at least :data:`RATIO_FLOOR`, at most
    :data:`MAX_PAYLOAD_BYTES`.

    >>> max_payload(2_000), max_payload(1_000_000), max_payload(10**9) == MAX_PAYLOAD_BYTES
    (16777216, 1024000000, True)
    """
    return min(MAX_PAYLOAD_BYTES, max(RATIO_FLOOR, stored * MAX_RATIO))


def read_header(blob: bytes, key: bytes) -> tuple[Header, bytes]:
    """Verify ``blob`` and return its header and (decompressed, still pickled) payload.

    Raises:
        BadSignature: the HMAC does not verify with ``key``.
        VersionMismatch: a format this Driftline cannot read.
        CheckpointError: truncated, a header that is not readable, or a payload that does
            not decompress to its declared size (see :func:`decompress`).
    """
    header, stored = verify(blob, key)
    return header, decompress(header, stored)


def verify(blob: bytes, key: bytes) -> tuple[Header, memoryview]:
    """Verify ``blob``'s signature, then read its header; the payload as stored (maybe
    compressed). Nothing is decompressed. Raises as :func:`read_header`."""
    if len(blob) < _SIG + _LEN.size:
        raise CheckpointError("checkpoint is truncated")
    signature, body = blob[:_SIG], blob[_SIG:]
    if not hmac.compare_digest(signature, sign(body, key)):
        raise BadSignature("checkpoint signature does not verify")
    (length,) = _LEN.unpack_from(body)
    try:
        fields = orjson.loads(body[_LEN.size:_LEN.size + length])
        header = Header(**fields)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"checkpoint header is not readable: {exc}") from None
    if header.format not in READABLE_FORMATS:
        raise VersionMismatch(
            f"checkpoint was written by {header.versions()}; this is format {FORMAT_VERSION}, "
            f"River {RIVER_VERSION}, Driftline {DRIFTLINE_VERSION}, which reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))}: run the Driftline that wrote it, or "
            f"{_WHAT_TO_DO}")
    return header, memoryview(body)[_LEN.size + length:]


#: A restored learner up to this size (pickled) holds the event parser's feature-name
#: objects (:meth:`Learner.share_strings`: one more in-memory copy, ~10 ms per MiB).
SHARE_STRINGS_MAX_BYTES = 1 << 20


def _unpickle(header: Header, payload: bytes) -> Learner:
    """The payload's learner, through the allow-list; a failure caused by another writer's
    versions says which versions differ and what to do."""
    foreign = header.format != FORMAT_VERSION or header.river != RIVER_VERSION
    try:
        learner = safe_pickle.loads(payload, legacy=header.format == 1)
    except UnsupportedObject as exc:
        if not foreign:
            raise
        problem = str(exc)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # also pyo3's PanicException (River's Rust classes)
        reason = safe_pickle.one_line(f"{type(exc).__name__}: {exc}")
        problem = f"its payload is not readable: {reason}"
        if not foreign:
            raise CheckpointError(f"checkpoint payload is not readable: {reason}") from None
    else:
        if not isinstance(learner, Learner):
            raise UnsupportedObject("checkpoint does not hold a learner")
        try:  # what was restored must checkpoint again (no state a later snapshot chokes on)
            again = safe_pickle.dumps(learner)
            if _REINLINE:  # pickling read every __dict__: the objects lost their fast path
                learner = safe_pickle.loads(again)
            if len(again) <= SHARE_STRINGS_MAX_BYTES:  # feature names as events bring them
                learner.share_strings(parsed_names(learner.kinds))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # RecursionError from a 100,000-deep list, ...
            raise UnsupportedObject("checkpoint holds a learner that cannot be checkpointed "
                                    f"again: {safe_pickle.one_line(type(exc).__name__)}"
                                    ) from None
        return learner
    raise VersionMismatch(
        f"checkpoint was written by {header.versions()}, this is format {FORMAT_VERSION}, "
        f"River {RIVER_VERSION}, Driftline {DRIFTLINE_VERSION}, and "
        f"{problem.removeprefix('checkpoint ')}: {_WHAT_TO_DO}")


def load(blob: bytes, where: Where, key: bytes) -> tuple[Header, Learner]:
    """Verify ``blob``, check it belongs to ``where``, and only then unpickle the learner
    (with :mod:`learners.safe_pickle`'s exact allow-list).

    A checkpoint of the previous format, or of another River version, loads if its objects
    are still readable; otherwise a :class:`VersionMismatch` names both sets of versions.
    """
    header, payload = read_header(blob, key)
    if header.where() != where:
        raise CheckpointError(f"checkpoint belongs to {header.where()}, not {where}")
    return header, _unpickle(header, payload)


def same_model(a: ModelSpec, b: ModelSpec) -> bool:
    """Whether two models-file entries describe the same model: same task, and pipelines
    that build the same estimator (however the text is spaced or its defaults spelled).

    >>> same_model(ModelSpec(task="regression", pipeline="linear_model.LinearRegression()"),
    ...            ModelSpec(task="regression", pipeline="linear_model.LinearRegression( l2=0.0 )"))
    True
    """
    if a.task != b.task:
        return False
    if a.pipeline == b.pipeline:
        return True
    return _meaning(build_pipeline(a.pipeline)) == _meaning(build_pipeline(b.pipeline))


def _meaning(model: Any) -> Any:
    return (type(model), repr(model._get_params()))


def rebrand(blob: bytes, source_key: bytes, where: Where, offset: int, key: bytes,
            now: float, spec: ModelSpec | None = None) -> bytes:
    """Verify ``blob`` with ``source_key``, load it through the allow-list, and write it
    again for ``where`` at ``offset``, signed with ``key``.

    Used to import a model exported from another cluster (``spec``: the models file's
    entry for ``where.model``, which the learner must match) or to roll a model back
    without replaying. The learner is re-pickled, never copied as raw bytes, so nothing
    outside the allow-list can come through.

    Raises:
        CheckpointError: as :func:`load`, or the learner is another model than ``spec``.
    """
    header, payload = read_header(blob, source_key)
    learner = _unpickle(header, payload)
    if spec is not None and not same_model(learner.spec, spec):
        raise CheckpointError(
            f"checkpoint holds a {learner.spec.task} model '{learner.spec.pipeline}', but the "
            f"models file's {where.model} is a {spec.task} model '{spec.pipeline}'")
    return dump(learner, where, offset, key, now)


def check_checkpointable(name: str, learner: Learner) -> None:
    """Refuse, at start-up and in one line, a model whose state cannot be checkpointed
    safely (it holds an object :mod:`learners.safe_pickle` cannot write, or whose pickle
    names something outside the allow-list). Called on a fresh learner of each model.

    >>> from schemas.models_file import ModelSpec
    >>> check_checkpointable("m", Learner.from_spec(ModelSpec(task="classification",
    ...     pipeline="linear_model.PAClassifier()"), 10))
    """
    try:  # a real round trip: exactly what a restore will do
        safe_pickle.loads(safe_pickle.dumps(learner))
    except UnsupportedObject as exc:
        raise ConfigError(f"models file: model '{name}' cannot be checkpointed safely: "
                          f"{exc}") from None
