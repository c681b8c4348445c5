"""Names and limits fixed by Driftline's public contract, in one place.

>>> TOPIC_SUFFIXES
('events', 'predictions', 'alerts', 'deadletter')
>>> MAX_EVENT_BYTES
1048576
"""

from typing import Final

EVENTS: Final = "events"
PREDICTIONS: Final = "predictions"
ALERTS: Final = "alerts"
DEADLETTER: Final = "deadletter"
TOPIC_SUFFIXES: Final = (EVENTS, PREDICTIONS, ALERTS, DEADLETTER)

MAX_EVENT_BYTES: Final = 1024 * 1024
MAX_FEATURES: Final = 10_000
MAX_NAME_CHARS: Final = 128

DEFAULT_MODEL: Final = "default"
DEFAULT_PIPELINE: Final = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"

REDIS_PREFIX: Final = "driftline"

#: Every ``error.type`` a dead letter can carry.
DEADLETTER_REASONS: Final = ("tombstone", "too_large", "invalid_encoding", "invalid_json",
                             "invalid_event", "unknown_model", "invalid_label", "model_error",
                             "internal_error")
