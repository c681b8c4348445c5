"""The input event: one UTF-8 JSON object per Kafka message.

Validated straight from the message bytes; numbers must be finite.

>>> e = Event.model_validate_json(b'{"event_id": "e1", "model": "fraud",'
...                               b' "features": {"amount": 12.5, "country": "FR"}, "label": true}')
>>> e.features, e.label, e.timestamp_ms
({'amount': 12.5, 'country': 'FR'}, True, None)
>>> Event.model_validate_json(b'{"event_id": "e2", "model": "m", "features": {"x": 1},'
...                           b' "timestamp": "2026-01-01T00:00:00Z"}').timestamp_ms
1767225600000.0
"""

from datetime import datetime
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from schemas.constants import MAX_FEATURES, MAX_NAME_CHARS

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
FeatureValue = StrictBool | StrictInt | StrictFloat | StrictStr | None
Label = StrictBool | StrictInt | StrictFloat | StrictStr


class Event(BaseModel):
    """One event to score (and, with a label, to learn from)."""

    model_config = ConfigDict(allow_inf_nan=False, frozen=True)

    event_id: Name
    model: Name
    features: dict[Name, FeatureValue] = Field(min_length=1, max_length=MAX_FEATURES)
    label: Label | None = None
    timestamp: StrictInt | AwareDatetime | None = Field(
        None, description="RFC 3339 string with offset, or epoch milliseconds.")

    @property
    def timestamp_ms(self) -> float | None:
        """The event time as epoch milliseconds, if the event has one."""
        if self.timestamp is None:
            return None
        if isinstance(self.timestamp, datetime):
            return self.timestamp.timestamp() * 1000.0
        return float(self.timestamp)
