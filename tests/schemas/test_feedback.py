"""The feedback contract: the event's constraints, a required label, its types kept."""

import orjson
import pytest
from pydantic import ValidationError

from schemas.feedback import Feedback

BASE = {"event_id": "e1", "model": "m", "label": True}


def parse(**changes):
    return Feedback.model_validate_json(orjson.dumps({**BASE, **changes}))


@pytest.mark.parametrize("label", [True, False, 0, 7, 2.5, "spam"])
def test_label_types_are_kept_exactly(label):
    parsed = parse(label=label).label
    assert parsed == label and type(parsed) is type(label)


@pytest.mark.parametrize("changes", [
    {"event_id": ""}, {"event_id": "x" * 129}, {"event_id": 7}, {"model": ""},
    {"model": "m" * 129}, {"label": None}, {"label": [1]}, {"label": {"a": 1}},
    {"timestamp": "yesterday"}, {"timestamp": "2026-01-01T00:00:00"}, {"timestamp": [1]},
])
def test_rejected(changes):
    with pytest.raises(ValidationError):
        parse(**changes)


def test_label_is_required():
    with pytest.raises(ValidationError, match="label"):
        Feedback.model_validate_json(b'{"event_id": "e1", "model": "m"}')


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"1e400"])
def test_non_finite_labels_are_rejected(raw):
    with pytest.raises(ValidationError):
        Feedback.model_validate_json(b'{"event_id":"e","model":"m","label":' + raw + b"}")


def test_extra_fields_ignored_limits_inclusive_and_timestamps():
    f = parse(extra=1, event_id="x" * 128, timestamp=1_700_000_000_123)
    assert len(f.event_id) == 128 and f.timestamp_ms == 1_700_000_000_123.0
    assert parse(timestamp="2026-01-01T01:00:00+01:00").timestamp_ms == 1_767_225_600_000.0
    assert parse().timestamp_ms is None


def test_frozen():
    with pytest.raises(ValidationError):
        parse().label = False
