"""The checkpoint format: a learner's whole state, signed with HMAC-SHA256.

Layout: ``signature (32 bytes) | header length (4 bytes, big-endian) | header JSON |
pickled learner``. The signature covers everything after it; nothing is unpickled
(nor the header trusted) before it verifies. The header names the model,
partition, source topic and consumer group, so a blob copied to another key is
refused too.

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
>>> load(blob, where, key=b"other")
Traceback (most recent call last):
...
learners.exceptions.CheckpointError: checkpoint signature does not verify
"""

import hashlib
import hmac
import io
import pickle
import struct
from dataclasses import asdict, dataclass

import orjson

from learners.exceptions import CheckpointError
from learners.learner import Learner

FORMAT_VERSION = 1
_SIG = hashlib.sha256().digest_size
_LEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Where:
    """Whose checkpoint: consumer group, events topic, partition, model."""

    group: str
    topic: str
    partition: int
    model: str


@dataclass(frozen=True, slots=True)
class Header:
    """What a checkpoint says about itself (trusted only after the signature verifies)."""

    format: int
    group: str
    topic: str
    partition: int
    model: str
    offset: int
    n_learned: int
    created_at: float

    def where(self) -> Where:
        """The (group, topic, partition, model) this checkpoint belongs to."""
        return Where(self.group, self.topic, self.partition, self.model)


def sign(body: bytes, key: bytes) -> bytes:
    """The HMAC-SHA256 of ``body``."""
    return hmac.new(key, body, hashlib.sha256).digest()


def dump(learner: Learner, where: Where, offset: int, key: bytes, now: float) -> bytes:
    """Serialise ``learner``, which reflects every event up to ``offset``, and sign it."""
    header = Header(FORMAT_VERSION, where.group, where.topic, where.partition, where.model,
                    offset, learner.n_learned, now)
    return seal(header, pickle.dumps(learner, protocol=5), key)


def seal(header: Header, payload: bytes, key: bytes) -> bytes:
    """Sign a header and a pickled payload into one blob."""
    head = orjson.dumps(asdict(header))
    body = _LEN.pack(len(head)) + head + payload
    return sign(body, key) + body


def read_header(blob: bytes, key: bytes) -> tuple[Header, bytes]:
    """Verify ``blob`` and return its header and (still pickled) payload."""
    if len(blob) < _SIG + _LEN.size:
        raise CheckpointError("checkpoint is truncated")
    signature, body = blob[:_SIG], blob[_SIG:]
    if not hmac.compare_digest(signature, sign(body, key)):
        raise CheckpointError("checkpoint signature does not verify")
    (length,) = _LEN.unpack_from(body)
    try:
        header = Header(**orjson.loads(body[_LEN.size:_LEN.size + length]))
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"checkpoint header is not readable: {exc}") from None
    if header.format != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format {header.format} is not {FORMAT_VERSION}")
    return header, body[_LEN.size + length:]


_SAFE_NAMES = {
    "builtins": {"bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int",
                 "list", "range", "set", "slice", "str", "tuple"},
    "collections": {"Counter", "OrderedDict", "defaultdict", "deque"},
    "functools": {"partial"},
    "random": {"Random"},
    "copyreg": {"_reconstructor"},
    "numpy": {"dtype", "ndarray"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
}
_SAFE_PREFIXES = ("river.", "learners.", "schemas.")
_UNSAFE_PREFIXES = ("river.datasets", "river.stream", "river.evaluate", "river.api")


class _Unpickler(pickle.Unpickler):
    """Unpickles only River's, Driftline's and a few standard classes: a second line of
    defence behind the signature (a checkpoint imported with a leaked key stays inert)."""

    def find_class(self, module: str, name: str) -> type:
        allowed = name in _SAFE_NAMES.get(module, ()) or (
            module.startswith(_SAFE_PREFIXES) and not module.startswith(_UNSAFE_PREFIXES)
            and not name.startswith("__"))
        if not allowed:
            raise CheckpointError(f"checkpoint refers to {module}.{name}, which is not allowed")
        return super().find_class(module, name)  # type: ignore[no-any-return]


def load(blob: bytes, where: Where, key: bytes) -> tuple[Header, Learner]:
    """Verify ``blob``, check it belongs to ``where``, and only then unpickle the learner
    (with an allow-list of classes)."""
    header, payload = read_header(blob, key)
    if header.where() != where:
        raise CheckpointError(f"checkpoint belongs to {header.where()}, not {where}")
    try:
        learner = _Unpickler(io.BytesIO(payload)).load()
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"checkpoint payload is not readable: {exc!r}") from None
    if not isinstance(learner, Learner):
        raise CheckpointError("checkpoint does not hold a learner")
    return header, learner


def rebrand(blob: bytes, source_key: bytes, where: Where, offset: int, key: bytes,
            now: float) -> bytes:
    """Verify ``blob`` with ``source_key`` and re-sign it for ``where`` at ``offset``.

    Used to import a model exported from another cluster (or to roll a model back
    without replaying): the learner itself is unchanged, and nothing is unpickled.
    """
    header, payload = read_header(blob, source_key)
    moved = Header(FORMAT_VERSION, where.group, where.topic, where.partition, where.model,
                   offset, header.n_learned, now)
    return seal(moved, payload, key)
