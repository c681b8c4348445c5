"""Worker logging: one line per event worth logging, JSON when asked.

Warnings and errors about an event or a partition carry ``model``, ``topic``,
``partition`` and ``offset`` (passed as ``extra``), which both formats print: an offset
of the feedback topic is not mistaken for one of the events topic.

>>> import logging
>>> record = logging.LogRecord("driftline", logging.WARNING, __file__, 1, "refused", None, None)
>>> record.topic, record.partition, record.offset = "t.feedback", 3, 41
>>> doc = orjson.loads(JsonFormatter().format(record))
>>> doc["level"], doc["message"], doc["topic"], doc["partition"], doc["offset"]
('WARNING', 'refused', 't.feedback', 3, 41)
>>> TextFormatter().format(record).endswith("refused topic=t.feedback partition=3 offset=41")
True
"""

import logging
import sys
from datetime import UTC, datetime

import orjson

CONTEXT = ("model", "topic", "partition", "offset")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON."""
        doc: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for name in CONTEXT:
            if hasattr(record, name):
                doc[name] = getattr(record, name)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger: message model=… topic=… partition=… offset=…``."""

    def __init__(self) -> None:
        super().__init__("[%(asctime)s] %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one text line (plus a traceback, if any)."""
        line = super().format(record)
        context = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT
                           if hasattr(record, name))
        if not context:
            return line
        head, sep, rest = line.partition("\n")
        return f"{head} {context}{sep}{rest}"


def configure(level: str, as_json: bool) -> None:
    """Send all logs to stderr in the chosen format; quieten chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
