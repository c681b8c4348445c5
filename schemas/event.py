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

import json
import math
import sys
import time
from collections.abc import Iterable
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
    ValidationError,
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
#: Floats first: pydantic's smart union stops at the first exact match, and most features
#: are floats (15% less validation work per event, measured under callgrind); the type
#: kept is the exact one whatever the order (an int stays an int, a bool a bool).
FeatureValue = StrictFloat | StrictInt | StrictBool | StrictStr | None
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


def parsed_names(names: Iterable[str]) -> dict[str, str]:
    """Each feature name mapped to the object the event parser hands out for it.

    pydantic-core caches the strings it parses (a fixed-size cache keyed by the text), so
    the events of a stream bring the same feature-name objects, event after event, until
    other strings evict them. A model keyed by those very objects finds them by identity
    (:meth:`learners.learner.Learner.share_strings`). Names that are not valid feature
    names map to themselves.

    >>> import json
    >>> names = parsed_names(["amount", "age"])
    >>> event = Event.model_validate_json(json.dumps(
    ...     {"event_id": "e1", "model": "m", "features": {"amount": 3.0}}))
    >>> next(iter(event.features)) is names["amount"], sorted(names)
    (True, ['age', 'amount'])
    """
    names = list(names)
    out: dict[str, str] = {}
    for start in range(0, len(names), MAX_FEATURES):
        chunk = names[start:start + MAX_FEATURES]
        doc = json.dumps({"event_id": "_", "model": "_", "features": dict.fromkeys(chunk, 0.0)})
        try:
            out.update((name, name) for name in Event.model_validate_json(doc).features)
        except ValidationError:
            out.update((name, name) for name in chunk)
    return out
