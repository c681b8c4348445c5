"""The feedback message: a late label for an event scored earlier, on ``<prefix>feedback``.

One UTF-8 JSON object per Kafka message, keyed like the event it labels (the
feedback topic is co-partitioned with the events topic). Validated straight
from the bytes with the event's own constraints: ``event_id`` and ``model`` are
1 to 128 characters, the label has an event label's types (bool, int, float, str;
finite numbers) and is required, ``timestamp`` is RFC 3339 with an offset or
epoch milliseconds. Unknown fields are ignored, as for events.

>>> f = Feedback.model_validate_json(b'{"event_id": "e1", "model": "fraud", "label": true}')
>>> f.event_id, f.model, f.label, f.timestamp_ms
('e1', 'fraud', True, None)
>>> Feedback.model_validate_json(b'{"event_id": "e1", "model": "m", "label": 2.5,'
...                              b' "timestamp": "2026-01-01T00:00:00Z"}').timestamp_ms
1767225600000.0
>>> from pydantic import ValidationError
>>> try:
...     Feedback.model_validate_json(b'{"event_id": "e1", "model": "m", "label": null}')
... except ValidationError as exc:
...     exc.error_count() > 0
True
"""

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from schemas.event import Event, Label, Name


class Feedback(BaseModel):
    """The label of event ``event_id`` of model ``model``, arriving after it was scored."""

    model_config = ConfigDict(allow_inf_nan=False, frozen=True)

    event_id: Name
    model: Name
    label: Label
    timestamp: StrictInt | AwareDatetime | None = Field(
        None, description="When the label became known: RFC 3339 string with offset, or "
                          "epoch milliseconds. Informative only: Driftline's clock for "
                          "feedback is the Kafka record's timestamp.")

    #: The label's time as epoch milliseconds, if it has one (the event's own rule).
    timestamp_ms = Event.timestamp_ms
