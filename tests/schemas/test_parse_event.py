"""The hot path's event parser decides exactly as pydantic: same values (types too), same
fields set, same errors — on valid events, near-valid ones and raw JSON spellings. One
documented difference: a feature named twice (RFC 8259 leaves duplicate names undefined)
takes its last value, even when pydantic would have refused an earlier one."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import schemas.event as event_module
from schemas.constants import MAX_NAME_CHARS
from schemas.event import Event, parse_event


def typed(value: Any) -> Any:
    """``value`` with every scalar's type spelled out (1 == 1.0 == True for ``==``)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    return (type(value).__name__, repr(value))


def outcome(parse, raw: bytes) -> tuple[Any, ...]:
    try:
        event = parse(raw)
    except ValidationError as exc:
        return ("error", exc.errors(include_url=False, include_context=False,
                                      include_input=False))
    return ("event", typed(event.__dict__), sorted(event.model_fields_set),
            event.__pydantic_extra__, event.timestamp_ms)


def literal(value: Any) -> str:
    return json.dumps(value, allow_nan=True)  # NaN/Infinity spelled as JS would


#: JSON number spellings, including ones beyond float64 and beyond 64-bit integers.
numbers = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from([str(2**63 - 1), str(2**63), str(-(2**63)), str(-(2**63) - 1), str(2**64),
                     "1e400", "-1e400", "1e308", "9.3e18", "-9.3e18", "9.2e18", "0.1e-400",
                     "-0.0", "1E2", "5e-324", "1.7976931348623157e308"]),
    st.floats(allow_nan=True, allow_infinity=True).map(literal),
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?\Z"),
)
scalars = st.one_of(numbers, st.sampled_from(["true", "false", "null"]),
                    st.text(max_size=5).map(literal))
values = st.one_of(scalars, st.sampled_from(["[1]", "{}", '{"a": 1}', '"\\ud800"']))
names = st.one_of(st.text(min_size=0, max_size=4),
                  st.text(alphabet="ab\u00e9\U0001f600", min_size=MAX_NAME_CHARS - 1,
                          max_size=MAX_NAME_CHARS + 1))
timestamps = st.one_of(
    st.integers(min_value=900_000_000, max_value=2_000_000_000).map(str),
    st.integers(min_value=900_000_000_000, max_value=2_000_000_000_000).map(str),
    st.floats(min_value=9e8, max_value=2e12).map(literal),
    st.sampled_from(['"2026-01-01T00:00:00Z"', '"2026-01-01T00:00:00"', '"soon"', "null",
                     "1e400", str(2**70), "true"]),
    numbers)


def obj(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{literal(k)}: {v}" for k, v in pairs) + "}"


@st.composite
def raw_events(draw) -> bytes:
    pairs: list[tuple[str, str]] = []
    if draw(st.booleans()) or draw(st.booleans()):
        pairs.append(("event_id", draw(st.one_of(names.map(literal), values))))
    if draw(st.booleans()) or draw(st.booleans()):
        pairs.append(("model", draw(st.one_of(names.map(literal), values))))
    if draw(st.booleans()) or draw(st.booleans()):
        features = draw(st.lists(st.tuples(names, values), min_size=0, max_size=6,
                                   unique_by=lambda pair: pair[0]))
        pairs.append(("features", draw(st.one_of(st.just(obj(features)), values))))
    if draw(st.booleans()):
        pairs.append(("label", draw(values)))
    if draw(st.booleans()):
        pairs.append(("timestamp", draw(timestamps)))
    if draw(st.booleans()):
        pairs.append((draw(st.text(max_size=3)), draw(values)))  # extra or duplicate key
    order = draw(st.permutations(pairs))
    return draw(st.sampled_from([obj(order), " " + obj(order) + "\n", "[" + obj(order) + "]",
                                 obj(order)[:-1]])).encode("utf-8", "surrogatepass")


@settings(max_examples=1500, deadline=None)
@given(raw_events())
def test_parse_event_decides_exactly_as_pydantic(raw):
    assert outcome(parse_event, raw) == outcome(Event.model_validate_json, raw)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(names, st.one_of(st.none(), st.booleans(), st.integers(), st.text(),
                                        st.floats(allow_nan=False, allow_infinity=False)),
                       min_size=1, max_size=8),
       st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63),
                 st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)))
def test_valid_events_agree(features, label):
    raw = json.dumps({"event_id": "e", "model": "m", "features": features,
                      "label": label}).encode()
    assert outcome(parse_event, raw) == outcome(Event.model_validate_json, raw)


def test_common_events_take_the_fast_path(monkeypatch):
    """The fast path is taken for the common shape (else this is only pydantic, slower)."""
    def refuse(raw):
        raise AssertionError("pydantic was asked")
    monkeypatch.setattr(Event, "model_validate_json", refuse)
    event = parse_event(b'{"event_id": "e1", "model": "m", "features": {"x": 1.5, "c": "FR",'
                        b' "n": null, "b": true, "i": 3}, "label": "fraud", "timestamp": '
                        b'1767225600, "source": "extra"}')
    assert (event.event_id, event.label, event.timestamp_ms) == ("e1", "fraud", 1767225600000.0)
    assert type(event.features["i"]) is int and type(event.features["b"]) is bool


@pytest.mark.parametrize("raw", [
    b'{"event_id": "e", "model": "m", "features": {"x": 18446744073709551616}}',  # int > u64
    b'{"event_id": "e", "model": "m", "features": {"x": 1}, "timestamp": "2026-01-01T00:00Z"}',
    b'{"event_id": "e", "model": "m", "features": {"x": [1]}}',
])
def test_uncommon_shapes_are_left_to_pydantic(raw):
    assert event_module._fast(raw) is None
    assert outcome(parse_event, raw) == outcome(Event.model_validate_json, raw)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(names, values), min_size=1, max_size=4,
                unique_by=lambda pair: pair[0]),
       st.one_of(st.none(), values), st.one_of(st.none(), timestamps))
def test_events_with_any_label_and_timestamp_agree(features, label, timestamp):
    pairs = [("event_id", '"e"'), ("model", '"m"'), ("features", obj(features))]
    pairs += [(key, v) for key, v in (("label", label), ("timestamp", timestamp)) if v is not None]
    raw = obj(pairs).encode("utf-8", "surrogatepass")
    assert outcome(parse_event, raw) == outcome(Event.model_validate_json, raw)


def test_a_feature_named_twice_takes_its_last_value():
    raw = b'{"event_id": "e", "model": "m", "features": {"x": 1, "x": 2.5}}'
    assert parse_event(raw).features == Event.model_validate_json(raw).features == {"x": 2.5}
    raw = b'{"event_id": "e", "model": "m", "features": {"x": [1], "x": 2.5}}'
    assert parse_event(raw).features == {"x": 2.5}  # pydantic refuses the first "x"
