"""Hand-built malicious pickles, correctly signed (so the signature is not what stops them):
each is refused with a one-line CheckpointError and its side effect never happens."""

import pickle
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learners import checkpoint, safe_pickle
from learners.checkpoint import FORMAT_VERSION, Header, Where, seal
from learners.exceptions import CheckpointError, UnsupportedObject
from learners.learner import Learner
from schemas.models_file import ModelSpec

WHERE = Where("g", "t.events", 0, "m")
KEY = b"gadget-test-key-of-at-least-32-bytes"
# A header as this version writes it (same River): a refusal is about the payload only.
HEADER = Header(FORMAT_VERSION, WHERE.group, WHERE.topic, WHERE.partition, WHERE.model, 1, 0,
                0.0, checkpoint.RIVER_VERSION, checkpoint.PYTHON_VERSION,
                checkpoint.DRIFTLINE_VERSION)


def text(value: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE of ``value``."""
    raw = value.encode()
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def glob(module: str, name: str) -> bytes:
    """Protocol-4 STACK_GLOBAL of (module, name): dotted names allowed by the format."""
    return text(module) + text(name) + b"\x93"


def call(func: bytes, *args: bytes) -> bytes:
    """``func(*args)`` (MARK args TUPLE REDUCE)."""
    return func + b"(" + b"".join(args) + b"tR"


def blob(body: bytes) -> bytes:
    """A signed checkpoint whose payload is PROTO 4, ``body``, STOP."""
    return seal(HEADER, b"\x80\x04" + body + b".", KEY)


def touch(marker) -> bytes:
    """A plain pickle that creates ``marker`` when unpickled without restrictions."""
    return call(glob("posix", "system"), text(f"touch {marker}"))


def gadgets(marker) -> dict[str, bytes]:
    cmd = text(f"touch {marker}")
    inner = b"\x80\x04" + touch(marker) + b"."
    return {
        "os.system": call(glob("os", "system"), cmd),
        "posix.system": touch(marker),
        "subprocess.run": call(glob("subprocess", "run"), cmd),
        "subprocess.Popen": call(glob("subprocess", "Popen"), cmd),
        "builtins.eval": call(glob("builtins", "eval"),
                              text(f"__import__('os').system('touch {marker}')")),
        "builtins.exec": call(glob("builtins", "exec"),
                              text(f"import os; os.system('touch {marker}')")),
        "builtins.compile": call(glob("builtins", "compile"), text("1"), text("f"), text("eval")),
        "builtins.open": call(glob("builtins", "open"), text(str(marker)), text("w")),
        "builtins.__import__": call(glob("builtins", "__import__"), text("os")),
        "builtins.getattr": call(glob("builtins", "getattr"),
                                 call(glob("builtins", "__import__"), text("os")),
                                 text("system")),
        "dotted pickle.loads": call(glob("learners.safe_pickle", "pickle.loads"),
                                    b"C" + bytes([len(inner)]) + inner),
        "dotted loads via checkpoint": call(glob("learners.checkpoint", "safe_pickle.pickle.loads"),
                                            b"C" + bytes([len(inner)]) + inner),
        "dotted importlib": call(glob("learners.checkpoint", "importlib.import_module"),
                                 text("os")),
        "dotted __globals__": glob("river.linear_model.pa", "BasePA.__init__.__globals__"),
        "dotted river builtins": glob("river.base", "base.inspect.os.system"),
        "dotted module attribute": call(glob("learners.checkpoint", "river.__loader__"),),
        "dotted Path.write_text": call(glob("pathlib", "Path.write_text"),
                                       call(glob("pathlib", "Path"), text(str(marker))),
                                       text("x")),
        "dunder of allowed class": glob("river.linear_model.pa", "PAClassifier.__reduce_ex__"),
        "copyreg._reconstructor": call(glob("copyreg", "_reconstructor"),
                                       glob("river.linear_model.pa", "PAClassifier"),
                                       glob("builtins", "object"), b"N"),
        "copyreg.__newobj__": call(glob("copyreg", "__newobj__"),
                                   glob("river.linear_model.pa", "PAClassifier")),
        "functools.partial": call(call(glob("functools", "partial"), glob("os", "system"), cmd)),
        "operator.attrgetter": call(call(glob("operator", "attrgetter"), text("system")),
                                    call(glob("builtins", "__import__"), text("os"))),
        "operator.methodcaller": call(glob("operator", "methodcaller"), text("system"), cmd),
        "numpy object array": pickle.dumps(np.array([1, "x"], dtype=object), protocol=4)[2:-1],
        "numpy.load": call(glob("numpy", "load"), text(str(marker))),
        "numpy dtype": call(glob("numpy", "dtype"), text("O")),
        "our array with object dtype": call(glob("learners.safe_pickle", "_array"), text("|O"),
                                            b")", b"C\x08" + b"\0" * 8),
        "our dtype object": call(glob("learners.safe_pickle", "_dtype"), text("O")),
        "our dtype structured": call(glob("learners.safe_pickle", "_dtype"), text("V8")),
        "our function os.system": call(glob("learners.safe_pickle", "_function"),
                                       text("os"), text("system")),
        "our bound method not in table": call(
            glob("learners.safe_pickle", "_bound_method"),
            call(glob("river.linear_model.pa", "PAClassifier")), text("__reduce_ex__")),
        "our bound method on a foreign name": call(
            glob("learners.safe_pickle", "_bound_method"),
            call(glob("river.linear_model.pa", "PAClassifier")), text("learn_one")),
        "our partial of a string": call(glob("learners.safe_pickle", "_partial"),
                                        text("copy.deepcopy"), b")", b"}"),
        "our partial of an instance": call(
            glob("learners.safe_pickle", "_partial"),
            call(glob("river.linear_model.pa", "PAClassifier")), b")", b"}"),
        "our itemgetter of an int": call(glob("learners.safe_pickle", "_itemgetter"), b"K\x00"),
        "our random state garbage": call(glob("learners.safe_pickle", "_random_state"),
                                         b"(" + text("MT19937") + b"K\x00K\x00K\x00K\x00t"),
        "our numpy.array of strings": call(call(
            glob("learners.safe_pickle", "_partial"),
            call(glob("learners.safe_pickle", "_function"), text("numpy"), text("array")),
            b"(" + b"]" + text("x") + b"at", b"}")),
        "persistent id": text("x") + b"Q",
        "extension code": b"\x82\x01",
        "defaultdict of os.system": call(glob("collections", "defaultdict"),
                                         glob("os", "system")),
        "bytearray of a huge size": call(glob("builtins", "bytearray"), b"\x8a\x05" + b"\0" * 4
                                         + b"\x01"),
        "numpy.array of an object whose __array_interface__ reads raw memory": call(call(
            glob("learners.safe_pickle", "_partial"),
            call(glob("learners.safe_pickle", "_function"), text("numpy"), text("array")),
            b"(" + call(glob("river.sketch.set", "Set")) + b"}(" + text("__array_interface__")
            + b"}(" + text("shape") + b"(M\xe8\x03t" + text("typestr") + text("<f8")
            + text("data") + b"(K\x08\x89t" + text("version") + b"K\x03uub" + b"t", b"}")),
        "deque of a range of 10**15 (a hang)": call(
            glob("collections", "deque"),
            call(glob("builtins", "range"), b"\x8a\x07" + (10**15).to_bytes(7, "little")),
            b"K\x00"),
        "set of a range of 10**9 (memory)": call(
            glob("builtins", "set"), call(glob("builtins", "range"), b"J" + (10**9).to_bytes(
                4, "little"))),
        "our numpy.ones of a huge shape": call(call(
            glob("learners.safe_pickle", "_partial"),
            call(glob("learners.safe_pickle", "_function"), text("numpy"), text("ones")),
            b"(\x8a\x05" + b"\0" * 4 + b"\x01t", b"}")),
    }


@pytest.mark.parametrize("name", sorted(gadgets("/tmp/x")))
def test_gadget_is_refused_in_one_line_and_runs_nothing(name, tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(CheckpointError) as refused:
        checkpoint.load(blob(gadgets(marker)[name]), WHERE, KEY)
    message = str(refused.value)
    assert message and "\n" not in message
    assert type(refused.value) in (UnsupportedObject, CheckpointError)
    assert not marker.exists()


def test_the_unrestricted_unpickler_would_have_run_the_payload(tmp_path):
    """The marker gadget is live: proof that the refusals above are not vacuous."""
    marker = tmp_path / "pwned"
    pickle.loads(b"\x80\x04" + touch(marker) + b".")
    assert marker.exists()


def test_a_malicious_allowed_class_reduce_cannot_reach_a_callable():
    """``__reduce__`` of an allowed class with malicious args builds an inert object."""
    evil = call(glob("collections", "defaultdict"), glob("builtins", "dict"))
    loaded = safe_pickle.loads(b"\x80\x04" + evil + b".")
    assert loaded.default_factory is dict


def test_refusals_name_the_offending_global():
    with pytest.raises(UnsupportedObject, match=r"refers to builtins\.getattr, which is not"):
        checkpoint.load(blob(gadgets("/tmp/x")["builtins.getattr"]), WHERE, KEY)
    with pytest.raises(UnsupportedObject, match=r"learners\.safe_pickle\.pickle\.loads"):
        checkpoint.load(blob(gadgets("/tmp/x")["dotted pickle.loads"]), WHERE, KEY)


def test_a_learner_that_is_not_a_learner_is_refused():
    payload = safe_pickle.dumps({"model": 1})
    with pytest.raises(UnsupportedObject, match="does not hold a learner"):
        checkpoint.load(seal(HEADER, payload, KEY), WHERE, KEY)


def test_rebrand_refuses_a_gadget_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(CheckpointError):
        checkpoint.rebrand(blob(touch(marker)), KEY, WHERE, 5, KEY, 0.0)
    assert not marker.exists()


def test_a_genuine_learner_still_loads_next_to_the_gadgets():
    learner = Learner.from_spec(ModelSpec(task="classification",
                                          pipeline="linear_model.PAClassifier()"), 10)
    learner.step({"x": 1.0}, True)
    _, restored = checkpoint.load(checkpoint.dump(learner, WHERE, 0, KEY, 0.0), WHERE, KEY)
    assert restored.n_learned == 1


_GENUINE = safe_pickle.dumps(Learner.from_spec(
    ModelSpec(task="classification", pipeline="preprocessing.StandardScaler() | "
              "linear_model.PAClassifier()"), 10))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_GENUINE) - 1), st.integers(0, 255)),
                min_size=1, max_size=4))
def test_a_signed_corrupted_pickle_loads_or_is_refused_never_crashes(edits):
    """Whatever bytes a key holder signs, loading ends in a learner or one CheckpointError."""
    payload = bytearray(_GENUINE)
    for position, value in edits:
        payload[position] = value
    try:
        checkpoint.load(seal(HEADER, bytes(payload), KEY), WHERE, KEY)
    except CheckpointError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_signed_random_bytes_are_refused_in_one_line(data):
    with pytest.raises(CheckpointError) as refused:
        checkpoint.load(seal(HEADER, b"\x80\x05" + data, KEY), WHERE, KEY)
    assert "\n" not in str(refused.value)


def test_a_rust_object_with_corrupt_state_is_refused_not_a_panic():
    """River's Rust classes panic (pyo3 ``PanicException``, a ``BaseException``) on bad state:
    found by the corrupted-pickle property above; it must stay one CheckpointError."""
    state = b"C\x01\x00"  # SHORT_BINBYTES of one byte: far too short for ADWIN's state
    args = b"(G?`bM\xd2\xf1\xa9\xfcK K\x05K\x05K\nt"  # (0.002, 32, 5, 5, 10)
    body = glob("river._river_rust.drift", "AdaptiveWindowing") + args + b"\x81" + state + b"b"
    with pytest.raises(CheckpointError, match="payload is not readable: PanicException"):
        checkpoint.load(blob(body), WHERE, KEY)


def test_a_learner_whose_state_cannot_be_checkpointed_again_is_refused():
    """A BUILD that hangs a 100,000-deep list on a genuine learner: loading is fine for the
    unpickler, but the next snapshot would crash the worker, so the restore refuses it."""
    learner = Learner.from_spec(ModelSpec(task="classification",
                                          pipeline="linear_model.LogisticRegression()"), 10)
    payload = safe_pickle.dumps(learner)
    depth = 100_000
    poisoned = (payload[:-1] + b"}" + text("junk") + b"]" * depth + b"a" * (depth - 1)
                + b"sb.")
    with pytest.raises(UnsupportedObject) as refused:
        checkpoint.load(seal(HEADER, poisoned, KEY), WHERE, KEY)
    assert "cannot be checkpointed again" in str(refused.value)
    assert "\n" not in str(refused.value)
