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
#: Drift incidents (alerts of one change across partitions), keyed by model.
INCIDENTS: Final = "incidents"
#: Late labels, co-partitioned with EVENTS (same key, same partition count).
FEEDBACK: Final = "feedback"

MAX_EVENT_BYTES: Final = 1024 * 1024
MAX_FEATURES: Final = 10_000
MAX_NAME_CHARS: Final = 128
#: Outputs copy the input's key; a longer key makes the event a dead letter.
MAX_KEY_BYTES: Final = 64 * 1024
#: The largest feedback message (bytes): an event id, a model, a label of at most
#: ``max_label_chars`` and a timestamp fit many times over; a larger one is ``too_large``
#: (feedback waiting for its event is held in memory and in Redis, so its size is bounded).
MAX_FEEDBACK_BYTES: Final = 64 * 1024
#: Dead letters quote at most this much of the key.
DEADLETTER_KEY_BYTES: Final = 1024

#: Event times: epoch numbers below this are seconds, from it on milliseconds.
EPOCH_SECONDS_BELOW: Final = 1e11
#: Event times before 2000-01-01T00:00:00Z or more than a day ahead are refused.
MIN_TIMESTAMP_MS: Final = 946_684_800_000.0
MAX_FUTURE_MS: Final = 86_400_000.0

#: Bounds of the models file and of one pipeline's text.
MAX_MODELS_FILE_CHARS: Final = 1_000_000
MAX_PIPELINE_CHARS: Final = 10_000

DEFAULT_MODEL: Final = "default"
DEFAULT_PIPELINE: Final = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"

#: Default first part of every Redis key (``DRIFTLINE_REDIS_PREFIX``).
REDIS_PREFIX: Final = "driftline"

#: Every ``error.type`` a dead letter can carry.
DEADLETTER_REASONS: Final = ("tombstone", "too_large", "invalid_encoding", "invalid_json",
                             "invalid_event", "unknown_model", "invalid_label", "model_error",
                             "output_too_large", "internal_error", "undecodable_batch",
                             "unmatched_feedback")
