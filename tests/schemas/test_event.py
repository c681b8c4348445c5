"""The input contract: what is accepted and what is rejected."""

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.event import Event

BASE = {"event_id": "e1", "model": "m", "features": {"x": 1.5}}


def parse(**changes):
    return Event.model_validate_json(orjson.dumps({**BASE, **changes}))


def test_types_are_kept_exactly():
    event = parse(features={"i": 3, "f": 2.5, "b": True, "s": "FR", "n": None}, label=1)
    assert event.features == {"i": 3, "f": 2.5, "b": True, "s": "FR", "n": None}
    assert type(event.features["i"]) is int and type(event.features["b"]) is bool
    assert event.label == 1 and type(event.label) is int


@pytest.mark.parametrize("changes", [
    {"event_id": ""}, {"event_id": "x" * 129}, {"model": ""}, {"features": {}},
    {"features": {"": 1}}, {"features": {"k" * 129: 1}}, {"features": [1]},
    {"features": {f"f{i}": 0 for i in range(10_001)}}, {"label": [1]}, {"label": {"a": 1}},
    {"timestamp": "yesterday"}, {"timestamp": "2026-01-01T00:00:00"}, {"event_id": 7},
])
def test_rejected(changes):
    with pytest.raises(ValidationError):
        parse(**changes)


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_rejected(raw):
    with pytest.raises(ValidationError):
        Event.model_validate_json(b'{"event_id":"e","model":"m","features":{"x":' + raw + b"}}")


def test_extra_fields_are_ignored_and_limits_inclusive():
    event = parse(extra="ok", event_id="x" * 128, features={f"f{i}": 0 for i in range(10_000)})
    assert len(event.features) == 10_000 and len(event.event_id) == 128


def test_timestamp_as_epoch_ms_or_rfc3339():
    assert parse(timestamp=1_700_000_000_123).timestamp_ms == 1_700_000_000_123.0
    assert parse(timestamp="2026-01-01T01:00:00+01:00").timestamp_ms == 1_767_225_600_000.0


@pytest.mark.parametrize("field", ["features", "label", "timestamp"])
def test_an_integer_beyond_float64_is_refused_wherever_it_is(field):
    huge = b"9" * 400
    body = {"features": b'{"x": ' + huge + b"}", "label": huge, "timestamp": huge}[field]
    raw = b'{"event_id": "e", "model": "m", "features": {"x": 1}, "' + field.encode() + \
        b'": ' + body + b"}"
    with pytest.raises(ValidationError, match="400 digits is beyond float64"):
        Event.model_validate_json(raw)


def test_the_largest_finite_integers_pass():
    big = int(1.7976931348623157e308)
    raw = (f'{{"event_id": "e", "model": "m", "features": {{"x": {big}}}, "label": -{big}}}')
    event = Event.model_validate_json(raw)
    assert event.label == -big and event.features["x"] == big


@pytest.mark.parametrize(("raw", "ms"), [
    (1_767_225_600, 1_767_225_600_000.0),          # int seconds
    (1_767_225_600.0, 1_767_225_600_000.0),        # float seconds
    (1_767_225_600.25, 1_767_225_600_250.0),
    (1_767_225_600_000, 1_767_225_600_000.0),      # int ms
    (1_767_225_600_000.0, 1_767_225_600_000.0),    # float ms
    ("2026-01-01T00:00:00Z", 1_767_225_600_000.0),
])
def test_epoch_numbers_are_seconds_below_1e11_else_milliseconds(raw, ms):
    assert parse(timestamp=raw).timestamp_ms == ms


@pytest.mark.parametrize("raw", [0, 42, 946_684_799, 946_684_799_999, "1999-12-31T23:59:59Z",
                                 -1_767_225_600, 4_102_444_800, 4_102_444_800_000,
                                 "2100-01-01T00:00:00Z", 1e300, 2 ** 62])
def test_implausible_timestamps_are_refused(raw):
    with pytest.raises(ValidationError, match="timestamp"):
        parse(timestamp=raw)


def test_a_timestamp_a_little_ahead_of_the_clock_passes():
    import time

    ahead = time.time() + 3600
    assert parse(timestamp=ahead).timestamp_ms == pytest.approx(ahead * 1000.0)


@given(st.dictionaries(st.text(min_size=1, max_size=8),
                       st.one_of(st.none(), st.booleans(), st.text(max_size=4),
                                 st.integers(min_value=-(2**63), max_value=2**63 - 1),
                                 st.floats(allow_nan=False, allow_infinity=False)),
                       min_size=1, max_size=8))
def test_every_feature_keeps_its_json_type(features):
    """Whatever the union's order, a feature is the JSON value's own type (int stays int,
    bool stays bool, 1.0 stays float)."""
    event = parse(features=features)
    assert [(type(v), v) for v in event.features.values()] == [
        (type(v), v) for v in orjson.loads(orjson.dumps(features)).values()]
