"""The input event: one UTF-8 JSON object per Kafka message.

Validated straight from the message bytes. Every number must be a finite float64
(``NaN``, ``Infinity``, ``1e400`` and integers beyond ±1.8e308 are refused), so a
value that passes can always be turned into a float by a model.

Timestamps: an RFC 3339 string with an offset, or an epoch number (int or float)
read by magnitude — below ``1e11`` it counts seconds, from ``1e11`` on
milliseconds (1e11 s is the year 5138, 1e11 ms is 1973: no plausible time is
ambiguous). A time before 2000-01-01 or more than a day ahead of the clock
is refused, so one bad clock cannot poison the end-to-end latency metric.

>>> e = Event.model_validate_json(b'{"event_id": "e1", "model": "fraud",'
...                               b' "features": {"amount": 12.5, "country": "FR"}, "label": true}')
>>> e.features, e.label, e.timestamp_ms
({'amount': 12.5, 'country': 'FR'}, True, None)
>>> [Event.model_validate_json(b'{"event_id": "e2", "model": "m", "features": {"x": 1},'
...                            b' "timestamp": ' + t + b'}').timestamp_ms
...  for t in (b'"2026-01-01T00:00:00Z"', b'1767225600', b'1767225600.0', b'1767225600000')]
[1767225600000.0, 1767225600000.0, 1767225600000.0, 1767225600000.0]
"""

import math
import sys
import time
from datetime import datetime
from typing import Annotated, Any

import orjson
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
    model_validator,
)

from schemas.constants import (
    EPOCH_SECONDS_BELOW,
    MAX_FEATURES,
    MAX_FUTURE_MS,
    MAX_NAME_CHARS,
    MIN_TIMESTAMP_MS,
)

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
FeatureValue = StrictBool | StrictInt | StrictFloat | StrictStr | None
Label = StrictBool | StrictInt | StrictFloat | StrictStr

#: The largest integer that converts to a finite float64 (about 1.8e308).
MAX_FLOAT_INT = int(sys.float_info.max)


def finite_number_problem(value: object) -> str | None:
    """Why ``value`` (a JSON scalar) is a number that is not a finite float64, or None.

    >>> finite_number_problem(10 ** 400), finite_number_problem(1e300), finite_number_problem("x")
    ('integer with 401 digits is beyond float64 (±1.8e308)', None, None)
    >>> finite_number_problem(float("nan"))
    'nan is not a finite number'
    """
    if type(value) is int:
        if -MAX_FLOAT_INT <= value <= MAX_FLOAT_INT:
            return None
        return f"integer with {len(str(abs(value)))} digits is beyond float64 (±1.8e308)"
    if type(value) is float and not math.isfinite(value):
        return f"{value} is not a finite number"
    return None


def epoch_ms(value: int | float) -> float:
    """An epoch number as milliseconds: seconds below ``1e11``, milliseconds from it on.

    >>> epoch_ms(1767225600), epoch_ms(1767225600.5), epoch_ms(1767225600000)
    (1767225600000.0, 1767225600500.0, 1767225600000.0)
    """
    return float(value) * 1000.0 if abs(value) < EPOCH_SECONDS_BELOW else float(value)


def plausible_ms(ms: float, now_ms: float | None = None) -> bool:
    """True when ``ms`` (epoch milliseconds) lies between 2000-01-01 and a day after now.

    >>> plausible_ms(1767225600000.0, now_ms=1767225600000.0), plausible_ms(42.0)
    (True, False)
    """
    now = time.time() * 1000.0 if now_ms is None else now_ms
    return MIN_TIMESTAMP_MS <= ms <= now + MAX_FUTURE_MS


class Event(BaseModel):
    """One event to score (and, with a label, to learn from)."""

    model_config = ConfigDict(allow_inf_nan=False, frozen=True)

    event_id: Name
    model: Name
    features: dict[Name, FeatureValue] = Field(min_length=1, max_length=MAX_FEATURES)
    label: Label | None = None
    timestamp: StrictInt | StrictFloat | AwareDatetime | None = Field(
        None, description="RFC 3339 string with offset, or epoch seconds (< 1e11) or "
                          "milliseconds (>= 1e11); 2000-01-01 to now + 1 day.")

    @model_validator(mode="after")
    def _finite_and_plausible(self) -> "Event":
        # one validator for all three fields, lean: it runs for every event
        features = self.features
        if int in map(type, features.values()):
            for name, value in features.items():
                problem = finite_number_problem(value)
                if problem is not None:
                    raise ValueError(f"feature '{name}': {problem}")
        if type(self.label) is int:
            problem = finite_number_problem(self.label)
            if problem is not None:
                raise ValueError(f"label: {problem}")
        value = self.timestamp
        if value is None:
            return self
        if type(value) is int:
            problem = finite_number_problem(value)
            if problem is not None:
                raise ValueError(f"timestamp: {problem}")
        ms = value.timestamp() * 1000.0 if isinstance(value, datetime) else (
            value * 1000.0 if -EPOCH_SECONDS_BELOW < value < EPOCH_SECONDS_BELOW else value)
        if not MIN_TIMESTAMP_MS <= ms <= time.time() * 1000.0 + MAX_FUTURE_MS:
            raise ValueError(f"timestamp {value} is not between 2000-01-01 and a day from "
                             "now (numbers below 1e11 are epoch seconds, others epoch ms)")
        return self

    @property
    def timestamp_ms(self) -> float | None:
        """The event time as epoch milliseconds, if the event has one."""
        if self.timestamp is None:
            return None
        if isinstance(self.timestamp, datetime):
            return self.timestamp.timestamp() * 1000.0
        return epoch_ms(self.timestamp)


#: orjson reads an integer literal beyond 64 bits as a float, pydantic as an int: a float
#: this large may have been such a literal, so it is left to pydantic.
_EXACT_FLOAT = 2.0 ** 63
_SCALARS = frozenset({bool, int, float, str})


def _plain_number(value: Any) -> bool:
    """True for a value both parsers read alike: a bool, a str, an int, or a float under
    2**63 in magnitude (orjson already refuses NaN, Infinity and overflowing literals)."""
    kind = type(value)
    return kind in _SCALARS and (kind is not float or -_EXACT_FLOAT < value < _EXACT_FLOAT)


def _fast(raw: bytes) -> Event | None:
    """The :class:`Event` ``raw`` holds, built without pydantic's validator when it has the
    common shape — names within their limits, scalar features, a scalar label, a numeric
    timestamp or none; None for anything else (pydantic decides those)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    event_id, model, features = data.get("event_id"), data.get("model"), data.get("features")
    if (type(event_id) is not str or type(model) is not str or type(features) is not dict
            or not 0 < len(event_id) <= MAX_NAME_CHARS or not 0 < len(model) <= MAX_NAME_CHARS
            or not 0 < len(features) <= MAX_FEATURES):
        return None
    for name, value in features.items():
        if not 0 < len(name) <= MAX_NAME_CHARS or (value is not None
                                                   and not _plain_number(value)):
            return None
    label, timestamp = data.get("label"), data.get("timestamp")
    if label is not None and not _plain_number(label):
        return None
    if timestamp is not None and (type(timestamp) not in (int, float)
                                  or not _plain_number(timestamp)):
        return None
    fields_set = {"event_id", "model", "features"}
    fields_set.update(key for key in ("label", "timestamp") if key in data)
    # what BaseModel.model_construct does, without its per-field default handling
    event = Event.__new__(Event)
    object.__setattr__(event, "__dict__", {"event_id": event_id, "model": model,
                                           "features": features, "label": label,
                                           "timestamp": timestamp})
    object.__setattr__(event, "__pydantic_fields_set__", fields_set)
    object.__setattr__(event, "__pydantic_extra__", None)
    object.__setattr__(event, "__pydantic_private__", None)
    try:
        event._finite_and_plausible()
    except ValueError:
        return None
    return event


def parse_event(raw: bytes) -> Event:
    """The event in one message's bytes: equal to ``Event.model_validate_json(raw)``.

    The hot path: an event of the common shape is parsed with orjson and checked by the
    same rules (about 3x faster than pydantic's JSON validation for the bench's events);
    anything else, and every invalid event, goes through pydantic, so errors are
    pydantic's. One difference: a feature named twice takes its last value (as orjson and
    most JSON parsers do; RFC 8259 leaves duplicate names undefined), where pydantic also
    validates the earlier value and may refuse the event.

    Raises:
        pydantic.ValidationError: the bytes are not a valid event.

    >>> parse_event(b'{"event_id": "e1", "model": "m", "features": {"x": 1.5}, "label": 1}')
    Event(event_id='e1', model='m', features={'x': 1.5}, label=1, timestamp=None)
    >>> from pydantic import ValidationError
    >>> try:
    ...     parse_event(b'{"event_id": "e1", "model": "m", "features": {}}')
    ... except ValidationError as exc:
    ...     exc.errors()[0]["type"]
    'too_short'
    """
    event = _fast(raw)
    return event if event is not None else Event.model_validate_json(raw)
