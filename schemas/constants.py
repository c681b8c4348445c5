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
#: Late labels, co-partitioned with EVENTS (same key, same partition count).
FEEDBACK: Final = "feedback"

MAX_EVENT_BYTES: Final = 1024 * 1024
MAX_FEATURES: Final = 10_000
MAX_NAME_CHARS: Final = 128
#: Outputs copy the input's key; a longer key makes the event a dead letter.
MAX_KEY_BYTES: Final = 64 * 1024
#: Dead letters quote at most this much of the key.
DEADLETTER_KEY_BYTES: Final = 1024

DEFAULT_MODEL: Final = "default"
DEFAULT_PIPELINE: Final = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"

REDIS_PREFIX: Final = "driftline"

#: Every ``error.type`` a dead letter can carry.
DEADLETTER_REASONS: Final = ("tombstone", "too_large", "invalid_encoding", "invalid_json",
                             "invalid_event", "unknown_model", "invalid_label", "model_error",
                             "internal_error", "unmatched_feedback")
