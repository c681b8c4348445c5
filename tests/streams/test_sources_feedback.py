"""Late labels from ``driftline produce``: withheld labels and feedback files."""

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.exceptions import ConfigError
from schemas.feedback import Feedback
from streams.sources import feedback_file, parse_delay, synthetic_events, withhold_labels


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 60), low=st.integers(0, 10), span=st.integers(0, 10),
       seed=st.integers(0, 5))
def test_every_label_is_sent_once_within_its_delay_after_its_event(n, low, span, seed):
    events = list(synthetic_events("sea", n, None, seed, "m"))
    out = list(withhold_labels(events, low, low + span, seed))
    sent = [m for topic, m in out if topic == "events"]
    assert sent == [{k: v for k, v in e.items() if k != "label"} for e in events]
    labels = {e["event_id"]: e["label"] for e in events}
    position = {}  # events sent before each message
    count = 0
    for topic, message in out:
        if topic == "events":
            position[message["event_id"]] = count
            count += 1
        else:
            Feedback.model_validate(message)
            assert message["label"] == labels.pop(message["event_id"])
            delay = count - 1 - position[message["event_id"]]
            # on time, or flushed after the last event when the stream ended first
            assert low <= delay <= low + span or count == n
    assert labels == {}
    assert list(withhold_labels(events, low, low + span, seed)) == out  # seeded


def test_events_without_labels_pass_alone():
    out = list(withhold_labels([{"event_id": "a", "model": "m", "features": {"x": 1}}], 0, 0, 1))
    assert out == [("events", {"event_id": "a", "model": "m", "features": {"x": 1}})]


@pytest.mark.parametrize("text", ["5", "a:b", "", "1:2:3"])
def test_bad_delays_are_one_line(text):
    with pytest.raises(ConfigError, match="expected MIN:MAX"):
        parse_delay(text)


def test_reversed_delay_is_refused():
    with pytest.raises(ConfigError, match="MIN <= MAX"):
        list(withhold_labels([], 5, 1, 0))


def test_feedback_file_sends_valid_feedback_as_it_is(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_bytes(b'{"event_id": "a", "model": "m", "label": true}\n\n'
                     b'{"event_id": "b", "model": "m", "label": 2, "extra": 1}\n')
    assert list(feedback_file(path)) == [
        {"event_id": "a", "model": "m", "label": True},
        {"event_id": "b", "model": "m", "label": 2, "extra": 1}]
    path.write_bytes(b'{"event_id": "a", "model": "m", "label": true}\n[1]\n')
    with pytest.raises(ConfigError, match=r"labels.jsonl:2: not a JSON object"):
        list(feedback_file(path))
    path.write_bytes(b"{oops\n")
    with pytest.raises(ConfigError, match=r"labels.jsonl:1: not a JSON object"):
        list(feedback_file(path))


@pytest.mark.parametrize("bad, error", [
    (b'{"event_id": "u2", "model": "default", "label": [1]}', "label."),
    (b'{"event_id": "u2", "model": "default"}', "label: Field required"),
    (b'{"anything": 1}', "event_id: Field required"),
    (b'{"event_id": "", "model": "default", "label": 1}', "event_id: "),
])
def test_feedback_that_is_json_but_not_feedback_names_its_line(tmp_path, bad, error):
    path = tmp_path / "labels.jsonl"
    good = b'{"event_id": "u1", "model": "default", "label": true}'
    path.write_bytes(b"\n".join([good, bad, good]) + b"\n")
    messages = feedback_file(path)
    assert next(messages) == {"event_id": "u1", "model": "default", "label": True}
    with pytest.raises(ConfigError) as info:
        next(messages)
    assert str(info.value).startswith(f"{path}:2: {error}")
    assert "\n" not in str(info.value)


def test_feedback_messages_are_valid_json():
    (_, message), *_ = [m for m in withhold_labels(
        synthetic_events("sea", 3, None, 1, "m"), 0, 0, 1) if m[0] == "feedback"]
    assert Feedback.model_validate_json(orjson.dumps(message)).event_id == "sea-1-0"
