"""The checkpoint header, versions, the previous format, refusal kinds, keys, rebrand, and
a review of the allow-list itself."""

import importlib
import inspect
import pickle
import re
from dataclasses import asdict, replace

import orjson
import pytest

from learners import checkpoint, safe_pickle, safe_pickle_names
from learners.checkpoint import Header, Where, seal, sign
from learners.exceptions import BadSignature, CheckpointError, UnsupportedObject, VersionMismatch
from learners.learner import Learner
from schemas.exceptions import ConfigError
from schemas.models_file import ModelSpec
from tests.learners.estimator_sweep import events

WHERE = Where("g", "t.events", 0, "m")
KEY = b"format-test-key-of-at-least-32-bytes"
DEFAULT = ModelSpec(task="classification",
                    pipeline="preprocessing.StandardScaler() | linear_model.LogisticRegression()")


def trained(spec=DEFAULT, n=200):
    learner = Learner.from_spec(spec, cooldown=100)
    stream = list(events(spec.task, n + 50))
    for x, y in stream[:n]:
        learner.step(x, y)
    return learner, stream[n:]


def v1_blob(learner, where, offset, key, now=0.0):
    """A checkpoint as format 1 wrote it: eight header fields, ``pickle.dumps(protocol=5)``.

    (The fixture generator is kept here rather than as a binary: format 1's code was
    ``Header(1, group, topic, partition, model, offset, n_learned, now)`` + ``seal``.)
    """
    head = orjson.dumps({"format": 1, "group": where.group, "topic": where.topic,
                         "partition": where.partition, "model": where.model, "offset": offset,
                         "n_learned": learner.n_learned, "created_at": now})
    body = len(head).to_bytes(4, "big") + head + pickle.dumps(learner, protocol=5)
    return sign(body, key) + body


def test_header_records_the_versions_that_wrote_it():
    learner, _ = trained()
    header, _ = checkpoint.read_header(checkpoint.dump(learner, WHERE, 7, KEY, 1.5), KEY)
    assert (header.format, header.offset, header.n_learned, header.created_at) == (3, 7, 200, 1.5)
    assert header.river == checkpoint.RIVER_VERSION and re.fullmatch(r"\d+\.\d+\.\d+.*",
                                                                      header.river)
    assert header.python == checkpoint.PYTHON_VERSION and header.python.count(".") == 2
    assert header.driftline == checkpoint.DRIFTLINE_VERSION != ""
    assert header.versions().startswith("format 3, River ")


def test_a_format_1_checkpoint_of_the_default_model_loads_and_predicts_the_same():
    learner, probes = trained()
    header, restored = checkpoint.load(v1_blob(learner, WHERE, 199, KEY), WHERE, KEY)
    assert (header.format, header.river, header.offset, restored.n_learned) == \
        (1, "unknown", 199, 200)
    for x, y in probes:
        a, b = learner.step(x, y), restored.step(x, y)
        assert repr((a.prediction, a.scores)) == repr((b.prediction, b.scores))


def test_a_format_1_checkpoint_holding_numpy_stops_with_versions_and_what_to_do():
    learner, _ = trained(ModelSpec(task="regression",
                                   pipeline="linear_model.BayesianLinearRegression()"))
    with pytest.raises(VersionMismatch) as refused:
        checkpoint.load(v1_blob(learner, WHERE, 199, KEY), WHERE, KEY)
    message = str(refused.value)
    assert "\n" not in message
    assert "written by format 1, River unknown" in message
    assert f"this is format 3, River {checkpoint.RIVER_VERSION}" in message
    assert "numpy" in message and "DRIFTLINE_CHECKPOINT_UNVERIFIABLE=fresh" in message
    assert "replay" in message and refused.value.reason == "version"


def test_a_future_format_is_refused_before_unpickling():
    learner, _ = trained()
    blob = checkpoint.dump(learner, WHERE, 1, KEY, 0.0)
    header, _ = checkpoint.read_header(blob, KEY)
    future = seal(replace(header, format=4, driftline="9.0.0"), b"not a pickle", KEY)
    with pytest.raises(VersionMismatch,
                       match=r"format 4, .*Driftline 9\.0\.0.*reads formats 1, 2, 3"):
        checkpoint.load(future, WHERE, KEY)


def test_another_river_version_loads_when_its_objects_are_still_readable():
    learner, probes = trained()
    blob = checkpoint.dump(learner, WHERE, 1, KEY, 0.0)
    header, payload = checkpoint.read_header(blob, KEY)
    older = seal(replace(header, river="0.21.0"), payload, KEY)
    loaded_header, restored = checkpoint.load(older, WHERE, KEY)
    assert loaded_header.river == "0.21.0"
    x, _ = probes[0]
    assert restored.model.predict_proba_one(x) == learner.model.predict_proba_one(x)


def test_another_river_version_with_moved_classes_names_both_versions():
    payload = b"\x80\x04\x8c\x0eriver.old_tree\x8c\x04Node\x93)\x81."
    header = checkpoint._header(WHERE, 1, 0, 0.0)
    old = seal(replace(header, river="0.19.0"), payload, KEY)
    with pytest.raises(VersionMismatch) as refused:
        checkpoint.load(old, WHERE, KEY)
    message = str(refused.value)
    assert "River 0.19.0" in message and f"River {checkpoint.RIVER_VERSION}" in message
    assert "river.old_tree.Node" in message and "DRIFTLINE_CHECKPOINT_UNVERIFIABLE" in message


def test_refusals_are_distinct_messages_and_reasons():
    learner, _ = trained()
    good = checkpoint.dump(learner, WHERE, 1, KEY, 0.0)
    header, _ = checkpoint.read_header(good, KEY)
    refusals = {}
    for kind, blob, key in (
            ("signature", good, b"another-key-of-at-least-32-bytes!!"),
            ("unsupported", seal(header, b"\x80\x04\x8c\x02os\x8c\x06system\x93.", KEY), KEY),
            ("version", seal(replace(header, format=9), b"", KEY), KEY)):
        with pytest.raises(CheckpointError) as refused:
            checkpoint.load(blob, WHERE, key)
        refusals[kind] = refused.value
    assert {k: type(v) for k, v in refusals.items()} == {
        "signature": BadSignature, "unsupported": UnsupportedObject, "version": VersionMismatch}
    assert {k: v.reason for k, v in refusals.items()} == {k: k for k in refusals}
    assert len({str(v) for v in refusals.values()}) == 3
    assert "key" not in str(refusals["unsupported"]) and "signature" not in str(
        refusals["unsupported"])


@pytest.mark.parametrize("secret", [None, "", "k", "x" * 31])
def test_short_or_missing_keys_are_refused_in_one_line(secret):
    with pytest.raises(ConfigError) as refused:
        checkpoint.signing_key(secret)
    assert "\n" not in str(refused.value) and "DRIFTLINE_CHECKPOINT_KEY" in str(refused.value)
    if secret:
        assert secret not in str(refused.value).split(":", 1)[1]  # never echo the key


def test_a_32_byte_key_is_accepted():
    assert checkpoint.signing_key("é" * 16) == ("é" * 16).encode()


def test_rebrand_repickles_and_checks_the_model():
    learner, probes = trained()
    source_key = b"vendor-key-of-at-least-thirty-two-b"
    exported = checkpoint.dump(learner, Where("vendor", "v.events", 3, "theirs"), 50,
                               source_key, 0.0)
    moved = checkpoint.rebrand(exported, source_key, WHERE, 9, KEY, 1.0, spec=DEFAULT)
    header, restored = checkpoint.load(moved, WHERE, KEY)
    assert (header.offset, header.n_learned, header.created_at) == (9, 200, 1.0)
    x, _ = probes[0]
    assert restored.model.predict_proba_one(x) == learner.model.predict_proba_one(x)
    respaced = ModelSpec(task="classification", pipeline=(
        "preprocessing.StandardScaler()|linear_model.LogisticRegression(l2=0.0)"))
    checkpoint.rebrand(exported, source_key, WHERE, 9, KEY, 1.0, spec=respaced)
    other = ModelSpec(task="classification", pipeline="tree.HoeffdingTreeClassifier()")
    with pytest.raises(CheckpointError, match=r"models file's m is a classification model "
                                              r"'tree\.HoeffdingTreeClassifier"):
        checkpoint.rebrand(exported, source_key, WHERE, 9, KEY, 1.0, spec=other)
    regression = ModelSpec(task="regression", pipeline=DEFAULT.pipeline)
    with pytest.raises(CheckpointError, match="regression"):
        checkpoint.rebrand(exported, source_key, WHERE, 9, KEY, 1.0, spec=regression)


def test_an_uncheckpointable_model_is_refused_at_start_up_in_one_line():
    learner = Learner.from_spec(DEFAULT, 10)
    learner.model["LogisticRegression"].hook = lambda: None
    with pytest.raises(ConfigError, match=r"^models file: model 'm' cannot be checkpointed "
                                          r"safely: .*lambda"):
        checkpoint.check_checkpointable("m", learner)


def test_a_model_holding_a_class_outside_the_allow_list_is_refused_at_start_up():
    import datetime

    learner = Learner.from_spec(DEFAULT, 10)
    learner.model["LogisticRegression"].started = datetime.date(2026, 1, 1)
    with pytest.raises(ConfigError, match=r"^models file: model 'm' cannot be checkpointed "
                                          r"safely: checkpoint refers to datetime\.date, which"):
        checkpoint.check_checkpointable("m", learner)


def test_check_checkpointable_accepts_every_default_model():
    for task, pipeline in (("classification", DEFAULT.pipeline),
                           ("regression", "linear_model.PARegressor()"),
                           ("anomaly", "anomaly.HalfSpaceTrees()")):
        checkpoint.check_checkpointable("m", Learner.from_spec(ModelSpec(task=task,
                                                                         pipeline=pipeline), 1))


# -- the allow-list reviewed -----------------------------------------------------------------
_DANGEROUS_MODULES = ("pickle", "_pickle", "os", "posix", "nt", "sys", "subprocess", "importlib",
                      "pathlib", "io", "_io", "codecs", "shutil", "socket", "builtins",
                      "operator", "functools", "copyreg", "runpy", "ctypes", "marshal", "types",
                      "code", "inspect", "numpy")
_RECONSTRUCTORS = {"_dtype", "_array", "_scalar", "_random_state", "_function",
                   "_bound_method", "_partial", "_itemgetter", "_random_trees_embedding",
                   "_set_state"}


def test_every_allowed_entry_is_a_class_or_a_named_reconstructor():
    for module, name in sorted(safe_pickle.ALLOWED):
        assert "." not in name, f"dotted name {module}.{name}"
        assert not name.startswith("__"), f"dunder {module}.{name}"
        obj = getattr(importlib.import_module(module), name)
        if module == "learners.safe_pickle":
            assert name in _RECONSTRUCTORS and inspect.isfunction(obj)
        else:
            assert isinstance(obj, type), f"{module}.{name} is not a class"


def test_no_dangerous_callable_is_allowed():
    forbidden = {("builtins", n) for n in ("getattr", "setattr", "delattr", "eval", "exec",
                                           "compile", "open", "__import__", "input", "vars",
                                           "globals", "locals", "breakpoint", "type", "object",
                                           "super", "classmethod", "staticmethod", "property",
                                           "memoryview")}
    assert not forbidden & safe_pickle.ALLOWED
    for module, name in safe_pickle.ALLOWED:
        root = module.split(".")[0]
        if root in _DANGEROUS_MODULES:
            # only plain data types of builtins; nothing else from these modules
            assert module == "builtins" and name in {
                "bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int",
                "list", "range", "set", "slice", "str", "tuple"}, f"{module}.{name}"
        assert root in ("builtins", "collections", "random", "statistics", "river", "learners",
                        "schemas"), f"{module}.{name}"
        assert not module.startswith(("river.datasets", "river.stream", "river.api",
                                      "river.evaluate", "river.utils.pretty")), module


def test_the_function_tables_hold_only_functions_that_call_nothing_they_are_given():
    for (module, _), func in safe_pickle.FUNCTIONS.items():
        assert callable(func) and not isinstance(func, type)
        assert module.split(".")[0] in ("river", "copy", "builtins", "numpy"), module
    assert set(safe_pickle.FUNCTIONS) - {k for k in safe_pickle.FUNCTIONS
                                         if k[0].startswith("river")} == {
        ("builtins", "str.lower"), ("copy", "deepcopy"), ("numpy", "ones"), ("numpy", "array")}
    assert safe_pickle.FUNCTIONS[("numpy", "array")] is not __import__("numpy").array
    for owner, name in safe_pickle.BOUND_METHODS:
        module, _, cls = owner.rpartition(".")
        klass = getattr(importlib.import_module(module), cls)
        assert module.startswith("river.") and isinstance(klass, type)
        assert name in vars(klass) and not name.startswith("__")
        assert any((c.__module__, c.__qualname__) in safe_pickle_names.CLASSES
                   for c in [*klass.__subclasses__(), klass])


def test_legacy_names_apply_only_to_format_1_and_check_what_they_wrap(tmp_path):
    assert set(safe_pickle.LEGACY) == {
        ("functools", "partial"),
        ("river.feature_extraction.kernel_approx", "RandomTreesEmbedding")}
    assert all(isinstance(v, type) for v in safe_pickle.LEGACY.values())
    import functools

    old = pickle.dumps(functools.partial(dict, a=1), protocol=5)
    assert safe_pickle.loads(old, legacy=True)() == {"a": 1}
    with pytest.raises(UnsupportedObject, match=r"functools\.partial"):
        safe_pickle.loads(old)
    evil = pickle.dumps(functools.partial(print, "x"), protocol=5)
    with pytest.raises(UnsupportedObject):
        safe_pickle.loads(evil, legacy=True)


def test_restored_header_fields_round_trip_through_json():
    header = checkpoint._header(WHERE, 3, 2, 1.0)
    assert Header(**orjson.loads(orjson.dumps(asdict(header)))) == header


def test_the_registry_refuses_an_uncheckpointable_model_at_start_up(monkeypatch):
    from learners.registry import ModelRegistry
    from schemas.models_file import ModelsConfig

    built = Learner.from_spec

    def with_hook(spec, cooldown):
        learner = built(spec, cooldown)
        learner.model["LogisticRegression"].hook = lambda: None
        return learner
    monkeypatch.setattr(Learner, "from_spec", staticmethod(with_hook))
    with pytest.raises(ConfigError, match=r"^models file: model 'default' cannot be "
                                          r"checkpointed safely: .*lambda"):
        ModelRegistry(ModelsConfig.default(), cooldown=10)
