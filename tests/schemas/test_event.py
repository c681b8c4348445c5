"""The input contract: what is accepted and what is rejected."""

import orjson
import pytest
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
